"""Gaussian clusters whose answer is known, and small encoders: for the tests of
keras_simclr.evaluation and of the pictures (a helper module, not a test file)."""

import keras
import numpy as np
import tensorflow as tf


def gaussian_clusters(n, num_classes, dim, separation, seed):
    """Gaussian classes with identity covariance around fixed random means."""
    means = np.random.default_rng(1234 + num_classes * dim).normal(size=(num_classes, dim))
    means *= separation / np.sqrt(2 * dim)  # mean pairwise distance ~ separation
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    features = means[labels] + rng.normal(size=(n, dim))
    return features.astype("float32"), labels.astype("int64"), means


def flatten_encoder(shape):
    """The identity representation: the encoder only flattens."""
    return keras.Sequential([keras.Input(shape), keras.layers.Flatten()])


def as_dataset(data, batch_size=64):
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def dense_encoder(dim, seed=0):
    return keras.Sequential(
        [
            keras.Input((dim,)),
            keras.layers.Dense(
                16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
            ),
        ]
    )
