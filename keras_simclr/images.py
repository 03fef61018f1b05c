"""The image convention of keras_simclr: `uint8` in [0, 255] or floats in [0, 1].

Every entry point that takes images (the augmentation layers, the input pipelines,
the evaluation protocols, the `SimCLR` model, the pictures) accepts either; images
stay `uint8` through shuffling and caching, and `to_unit_float` is the one
conversion between the two, wherever it happens.
"""

import importlib

import keras


def to_unit_float(images, backend=None):
    """Converts `uint8` images to float32 in [0, 1]; returns other images unchanged.

    The conversion divides by 255 (not multiplies by its rounded reciprocal), so that a
    `uint8` image gives exactly the results of its float copy divided by 255. Float
    images are taken to be in [0, 1] already and are returned as they are (cast them
    to the dtype you need).

    Args:
        images: a tensor or array of images, of any shape.
        backend: where the division runs: `None` for `keras.ops`; a backend name,
            such as `"tensorflow"` inside a `tf.data` pipeline whatever Keras'
            backend is; or a backend namespace, such as a preprocessing layer's
            `self.backend`.

    Returns:
        float32 images in [0, 1] for `uint8` input, else `images` itself.

    Example:

    >>> to_unit_float(np.array([0, 51, 255], "uint8")).numpy().tolist()
    [0.0, 0.20000000298023224, 1.0]
    """
    if keras.backend.standardize_dtype(images.dtype) != "uint8":
        return images
    if backend is None:
        return keras.ops.divide(keras.ops.cast(images, "float32"), 255.0)
    if isinstance(backend, str):
        backend = importlib.import_module(f"keras.src.backend.{backend}")
    return backend.numpy.divide(backend.cast(images, "float32"), 255.0)
