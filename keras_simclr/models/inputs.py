"""What `fit()` and the step are given: arrays made into datasets, the global batch,
augmenters, labels and the probe's clean images checked.

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


def augmenter_list(augmenters, num_views):
    """`augmenters` (None, one layer or one per view) as a list, checked."""
    if augmenters is None:
        return []
    if not isinstance(augmenters, (list, tuple)):
        augmenters = [augmenters]
    if len(augmenters) not in (1, num_views) or not all(
        callable(a) for a in augmenters
    ):
        raise ValueError(
            f"`augmenters` must be a layer making every view or a list of "
            f"{num_views} layers, one per view. Received: augmenters={augmenters!r}"
        )
    return list(augmenters)


def probe_labels(y, has_probe, model_name):
    """The batch's labels for the online probe, flat `int32`, or `None` without."""
    if y is None:
        return None
    if len(y.shape) > 2:
        raise ValueError(
            f"The labels have shape {tuple(y.shape)}, like images: a dataset whose "
            "elements are (view_1, view_2) is read by Keras as (x, y). Make the "
            "elements ((view_1, view_2),) or ((view_1, view_2), labels)."
        )
    if not has_probe:
        raise ValueError(
            "The batches carry labels but the model has no linear probe. "
            f"Construct {model_name} with `num_classes=...` to train the "
            "online linear probe, or drop the labels from the input pipeline."
        )
    return keras.ops.cast(keras.ops.reshape(y, (-1,)), "int32")


PROBE_INPUTS = ("views", "images")


def split_probe_images(x):
    """`x` without the online probe's clean images, and those images (or `None`).

    The input pipeline carries them beside the views as `{"views": (view_1, view_2),
    "images": images}` (`keras_simclr.data.pretraining_dataset(...,
    probe_images=True)`); any other `x` has none.
    """
    if not isinstance(x, dict):
        return x, None
    if set(x) != {"views", "images"}:
        raise ValueError(
            "A dict of training inputs must have exactly the keys 'views' (the tuple "
            "of views) and 'images' (the clean images the online probe trains on), "
            "as keras_simclr.data.pretraining_dataset(..., probe_images=True) makes "
            f"them. Received the keys {sorted(x)}."
        )
    return x["views"], x["images"]


def probe_images(x, labelled, probe_on):
    """The views' input, and the images a probe with `probe_on` trains on (or `None`).

    Clean images are an in-model augmenter's input or the `"images"` the pipeline
    carries; `None` trains the probe on the views (or not at all, without labels).
    """
    x, images = split_probe_images(x)
    if images is not None and probe_on != "images":
        raise ValueError(
            "The batches carry clean images for the online probe, but the model "
            "trains it on the views (probe_on='views'). Construct the model with "
            "probe_on='images', or drop `probe_images` from the input pipeline."
        )
    if not labelled or probe_on != "images":
        return x, None
    if images is None:
        if isinstance(x, (tuple, list)):
            raise ValueError(
                "probe_on='images' trains the online probe on the clean images, but "
                "the batches carry only the views. Have the input pipeline carry "
                "them (keras_simclr.data.pretraining_dataset(..., "
                "probe_images=True)), augment in the model, or construct the model "
                "with probe_on='views'."
            )
        images = x
    return x, images


def _is_tf_tensor(x):
    # Without importing TensorFlow: a program that never imported it has none.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.Tensor)


def is_tf_dataset(x):
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
    if is_tf_dataset(x):
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
