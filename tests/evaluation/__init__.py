"""Tests of keras_simclr.evaluation, one file per module."""
