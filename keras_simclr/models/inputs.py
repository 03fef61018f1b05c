"""What `fit()` is given: arrays made into datasets, the global batch checked.

Under several replicas (or devices) a global batch must split evenly; these helpers
find out before anything is traced.
"""

import sys

import keras
import numpy as np

from keras_simclr import distribute


def is_array_data(x):
    """Whether `x` (or each element of a tuple of it) is an in-memory array."""
    leaves = keras.tree.flatten(x) if isinstance(x, (tuple, list)) else [x]
    return bool(leaves) and all(
        isinstance(leaf, np.ndarray) or keras.ops.is_tensor(leaf) or _is_tf_tensor(leaf)
        for leaf in leaves
    )


def _is_tf_tensor(x):
    # Without importing TensorFlow: a program that never imported it has none.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.Tensor)


def _is_tf_dataset(x):
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.data.Dataset)


def arrays_to_dataset(x, y, batch_size, shuffle, replicas):
    """Arrays as a dataset of full global batches (the partial last one dropped)."""
    tf = _tf()
    batch_size = batch_size or 32
    distribute.per_replica_batch_size(batch_size, replicas)
    elements = tuple(x) if isinstance(x, (tuple, list)) else x
    dataset = tf.data.Dataset.from_tensor_slices(
        (elements,) if y is None else (elements, y)
    )
    if shuffle:
        dataset = dataset.shuffle(len(tf.nest.flatten(x)[0]), reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def check_global_batch(x, batch_size, replicas, static=False):
    """Fails early, before tracing, when the global batch cannot be split evenly.

    Replicas may hold different numbers of examples (a partial last batch): the
    loss gathers the sizes. TPUs need static shapes, hence `static`.
    """
    if replicas <= 1 and not static:
        return
    if _is_tf_dataset(x):
        leaves = _tf().nest.flatten(x.element_spec)
        size = leaves[0].shape[0] if leaves and leaves[0].shape.rank else None
        if size is None and static:
            raise ValueError(
                "Training on TPUs needs a static global batch size: batch the "
                "dataset with `drop_remainder=True` and a batch size that is a "
                f"multiple of {replicas}."
            )
    else:
        size = batch_size
    if size is not None:
        distribute.per_replica_batch_size(size, replicas)


def _tf():
    # Imported on first use: the JAX backend runs without TensorFlow.
    import tensorflow as tf

    return tf
