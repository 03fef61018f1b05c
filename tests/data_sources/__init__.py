"""Tests of keras_simclr.data, one file per module (not tests/data/: a common name for
test files, and a top-level package name here)."""
