"""Images, statistics and one instance of every augmentation layer, for the tests."""

import math

import numpy as np
import tensorflow as tf

from keras_simclr import augment

# Binomial / mean checks use 5 standard deviations: a false alarm about once in
# 1.7 million runs, while a wrong probability (e.g. 0.5 for 0.8) fails by > 30 sigma.
SIGMAS = 5.0


def random_images(n, size=16, channels=3, seed=0):
    height, width = (size, size) if isinstance(size, int) else size
    return np.random.default_rng(seed).random((n, height, width, channels), np.float32)


def draw(layer, shape):
    """Draws one batch of parameters for images of `shape` without allocating them."""

    @tf.function
    def draw_once():
        return layer.get_random_transformation(tf.zeros(shape), training=True)

    return tf.nest.map_structure(lambda t: t.numpy(), draw_once())


def binomial_ok(hits, n, p):
    return abs(hits / n - p) <= SIGMAS * math.sqrt(p * (1 - p) / n)


def make_layers(seed=0, jit_compile=True):
    """One instance of every random layer, all parameters that apply per example."""
    compile_ = {"jit_compile": jit_compile}
    return {
        "crop": augment.RandomResizedCrop(12, 12, seed=seed, **compile_),
        "jitter": augment.ColorJitter(probability=1.0, seed=seed, **compile_),
        "drop": augment.RandomColorDrop(probability=0.5, seed=seed, **compile_),
        "blur": augment.RandomGaussianBlur(probability=1.0, seed=seed, **compile_),
        "apply": augment.RandomApply(
            augment.ColorJitter(probability=1.0, **compile_), probability=0.5, seed=seed
        ),
        "simclr": augment.SimCLRAugment(16, seed=seed, **compile_),
        "cifar": augment.SimCLRAugment(16, preset="cifar", seed=seed, **compile_),
        "grayscale": augment.SimCLRAugment(
            16, preset="grayscale", seed=seed, **compile_
        ),
    }


LAYER_NAMES = list(make_layers())


def input_for(name, n=8, size=24, seed=0):
    return random_images(n, size, channels=1 if name == "grayscale" else 3, seed=seed)
