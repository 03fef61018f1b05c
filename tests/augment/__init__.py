"""Tests of keras_simclr.augment, one file per module."""
