"""Features h of an encoder, extracted once in inference mode, and the data checks
every protocol shares.

Data is either a tuple `(images, labels)` of NumPy arrays or a `tf.data.Dataset` of
`(images, labels)` batches. Images are float32 in [0, 1] or uint8 in [0, 255]
(converted to [0, 1] floats before `preprocess`); labels are integer class ids.
"""

import functools

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_simclr.images import to_unit_float
from keras_simclr import checks


def extract_features(encoder, data, preprocess=None, batch_size=256):
    """Runs an encoder once over a dataset in inference mode.

    Features are extracted once and cached, as in the paper's linear evaluation
    (Appendix B.6): the encoder is frozen and called with `training=False`, so batch
    normalisation uses its moving statistics and dropout is off.

    Args:
        encoder: a `keras.Model` (or layer) mapping a float32 image batch in [0, 1]
            to 2-D features `h` of shape `(batch, dim)`.
        data: `(images, labels)` NumPy arrays or a `tf.data.Dataset` of
            `(images, labels)` batches. uint8 images are scaled to [0, 1].
        preprocess: optional callable applied to the [0, 1] image batch before the
            encoder, e.g. `keras_simclr.augment.CenterCropResize`.
        batch_size: batch size for NumPy input (a dataset keeps its own batches).

    Returns:
        A tuple `(features, labels)`: float32 `(n, dim)` and int64 `(n,)` arrays in
        the order of `data`.

    Example:

    >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> images = np.random.rand(10, 8, 8, 1).astype("float32")
    >>> h, y = extract_features(encoder, (images, np.arange(10) % 2))
    >>> h.shape
    (10, 64)
    """
    _check_encoder(encoder)
    data = _check_data(data, "data")
    checks.positive_int("batch_size", batch_size)
    return _extract(encoder, data, preprocess, batch_size)


def _check_encoder_or_features(encoder):
    if encoder is not None:
        _check_encoder(encoder)


def _features(encoder, data, preprocess, batch_size):
    """Features of checked data: extracted by `encoder`, or the data themselves."""
    if encoder is not None:
        return _extract(encoder, data, preprocess, batch_size)
    if isinstance(data, tf.data.Dataset) or np.asarray(data[0]).ndim != 2:
        raise ValueError(
            "With `encoder=None` the data must be `(features, labels)` NumPy arrays "
            "with 2-D features, e.g. from `extract_features`. Received "
            + (
                "a tf.data.Dataset."
                if isinstance(data, tf.data.Dataset)
                else f"features of shape {np.asarray(data[0]).shape}."
            )
        )
    return np.asarray(data[0], np.float32), data[1]


def _check_encoder(encoder):
    if not isinstance(encoder, keras.layers.Layer):
        raise ValueError(
            "`encoder` must be a `keras.Model` (or layer) mapping image batches to "
            f"features. Received: encoder of type {type(encoder).__name__}"
        )




def _check_labels(labels, name):
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"The labels of `{name}` must be integer class ids of shape (n,). Received: "
            f"shape {labels.shape}, dtype {labels.dtype}. For one-hot labels pass "
            "`labels.argmax(axis=-1)`."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"The labels of `{name}` must be class ids >= 0. Received: min {labels.min()}"
        )
    return labels.astype(np.int64)


def _check_data(data, name):
    """Returns a dataset unchanged, or `(images, labels)` with checked labels."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                f"`{name}` must yield `(images, labels)` batches. Received a dataset "
                f"with element_spec={spec}"
            )
        images_spec, labels_spec = spec
        if labels_spec.shape.rank == 0:
            raise ValueError(
                f"`{name}` must be batched (labels of rank >= 1); call `.batch(...)` on "
                f"it. Received: element_spec={spec}"
            )
        if not labels_spec.dtype.is_integer:
            raise ValueError(
                f"The labels of `{name}` must be integer class ids. Received: "
                f"dtype {labels_spec.dtype.name}. For one-hot labels map "
                "`tf.argmax(labels, axis=-1)`."
            )
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images = np.asarray(data[0])
        labels = _check_labels(data[1], name)
        if images.ndim < 2 or images.shape[0] != labels.size or labels.size == 0:
            raise ValueError(
                f"`{name}` must hold as many images as labels (and at least one). "
                f"Received: images of shape {images.shape}, {labels.size} labels"
            )
        return images, labels
    raise ValueError(
        f"`{name}` must be a tuple `(images, labels)` of NumPy arrays or a "
        f"`tf.data.Dataset` of `(images, labels)` batches. Received: {name} of type "
        f"{type(data).__name__}"
    )


def _batches(data, batch_size):
    """Yields `(images, int64 labels)` batches of checked data, in order."""
    if isinstance(data, tf.data.Dataset):
        for images, labels in data:
            yield images, labels.numpy().reshape(-1).astype(np.int64)
        return
    images, labels = data
    if batch_size is None:
        batch_size = labels.size
    for start in range(0, labels.size, batch_size):
        yield images[start : start + batch_size], labels[start : start + batch_size]


def _labels_of(data):
    if isinstance(data, tf.data.Dataset):
        labels = [labels for _, labels in _batches(data, None)]
        if not labels:
            raise ValueError("`train_data` is empty.")
        return _check_labels(np.concatenate(labels), "train_data")
    return data[1]


def _unit_float(images):
    """uint8 images to [0, 1] floats; float images are taken to be in [0, 1]."""
    return ops.cast(to_unit_float(images), "float32")


def _extract(function, data, preprocess, batch_size):
    """`function(preprocess(images), training=False)` over checked data, batched."""
    step, outputs, labels = None, [], []
    for images, batch_labels in _batches(data, batch_size):
        if step is None:
            step = _compiled_inference(function, preprocess, images)
        output = np.asarray(step(images))
        if output.ndim != 2:
            raise ValueError(
                "`encoder` must map an image batch to 2-D features (batch, dim). It "
                f"returned shape {output.shape}; for a `keras.applications` model pass "
                "`include_top=False, pooling='avg'`."
            )
        outputs.append(output)
        labels.append(batch_labels)
    if not outputs:
        raise ValueError("The data is empty: no batch to extract features from.")
    labels = _check_labels(np.concatenate(labels), "data")
    return np.concatenate(outputs), labels


def _compiled_inference(function, preprocess, images):
    """`_inference` compiled once per extraction, on Keras' backend."""
    inference = functools.partial(_inference, function, preprocess)
    if keras.backend.backend() == "jax":
        import jax

        # The batches come from NumPy or tf.data; JAX reads them as host arrays.
        compiled = jax.jit(inference)
        return lambda batch: compiled(np.asarray(batch))
    # One graph per extraction, traced once for every batch size. A partial (not a
    # closure) keys TensorFlow's retracing detector on this extraction alone, so
    # consecutive evaluations are not reported as retracing.
    signature = tf.TensorSpec((None, *images.shape[1:]), images.dtype)
    return tf.function(inference, input_signature=[signature])


def _inference(function, preprocess, images):
    images = _unit_float(images)
    if preprocess is not None:
        images = preprocess(images)
    return ops.cast(function(images, training=False), "float32")
