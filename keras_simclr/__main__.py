"""`python -m keras_simclr`: the same as the `simclr` command."""

from keras_simclr.cli import run

run()
