"""Composition: a layer applied to each example with a probability.

SimCLR composes its augmentations as `random_apply(f, p, x)` (Appendix A); the
stages run back to back on one backend (`_SharedBackend`), TensorFlow's inside
`tf.data` whatever Keras' backend is.
"""

import keras

from keras_simclr.augment.base import _FLOAT
from keras_simclr.augment.base import BaseImagePreprocessingLayer
from keras_simclr.augment.base import _broadcast
from keras_simclr.augment.base import _channels_last
from keras_simclr.augment.base import _ImageLayer
from keras_simclr.augment.base import _is_stage
from keras_simclr.augment.base import _register
from keras_simclr.augment.base import _sub_seed
from keras_simclr.augment.base import _to_planes
from keras_simclr import checks


class _SharedBackend:
    """Runs sub-layers on the backend of the calling layer (TensorFlow in tf.data)."""

    def __init__(self, backend, layers):
        self.backend = backend
        self.layers = [layer for layer in layers if hasattr(layer, "backend")]

    def __enter__(self):
        for layer in self.layers:
            layer.backend.set_backend(self.backend.name)

    def __exit__(self, *exc_info):
        for layer in self.layers:
            layer.backend.reset()


@_register
class RandomApply(_ImageLayer):
    """Applies a layer to each example with a probability, else passes it through.

    SimCLR composes its augmentations as `random_apply(f, p, x)` (Appendix A):
    colour jitter with p = 0.8, colour drop with p = 0.2, blur with
    p = 0.5. This layer does that per example for any image-to-image layer of
    unchanged shape; the layer runs on the whole batch and each example keeps its
    result with probability `probability`.

    Args:
        layer: a Keras layer mapping images to images of the same shape, e.g. a
            Keras preprocessing layer or one of `keras_simclr.augment`'s.
        probability: probability of applying `layer` to an example.
        seed: integer seed of the random stream, or `None`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        images: `(B, H, W, C)` or `(H, W, C)` images, float in [0, 1] or `uint8`.
        training: `True` (default) to apply at random, `False` to return the input.

    Returns:
        Float images of the input's shape, clipped to [0, 1].

    Example:

    >>> solarize = keras.layers.Solarization(0.5, value_range=(0, 1))
    >>> maybe = keras_simclr.augment.RandomApply(solarize, probability=0.2, seed=0)
    >>> maybe(keras.random.uniform((4, 32, 32, 3), seed=0)).shape
    TensorShape([4, 32, 32, 3])
    """

    def __init__(self, layer, probability, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "`layer` must be a Keras layer mapping images to images. "
                f"Received: layer={layer!r}"
            )
        self.layer = layer
        self.probability = checks.probability("probability", probability)

    def _is_preprocessing(self):
        return isinstance(self.layer, BaseImagePreprocessingLayer)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        super().build(input_shape)

    def get_random_transformation(self, data, training=True, seed=None):
        """Returns `None` when not training, else `{"apply": bool (B,), "layer": ...}`
        where `"layer"` holds the wrapped preprocessing layer's own parameters."""
        if not training:
            return None
        # The wrapped layer draws from this layer's stream too, so that `seed` alone
        # fixes the result.
        seed = self._seed(seed)
        draws = self.backend.random.uniform(
            (self._batch_size(data),), seed=_sub_seed(seed, 0), dtype=_FLOAT
        )
        transformation = {"apply": draws < self.probability, "layer": None}
        if self._is_preprocessing():
            with _SharedBackend(self.backend, [self.layer]):
                transformation["layer"] = self.layer.get_random_transformation(
                    data, training=True, seed=_sub_seed(seed, 1)
                )
        return transformation

    def transform_images(self, images, transformation, training=True):
        images = self.backend.cast(images, _FLOAT)
        if not training or transformation is None:
            return self._output_images(images)
        return self._output_images(self._select(images, transformation))

    def _select(self, images, transformation):
        """float32 images `(B, H, W, C)`: the layer's output for the examples it
        applies to, the input for the others."""
        if self._is_preprocessing():
            with _SharedBackend(self.backend, [self.layer]):
                applied = self.layer.transform_images(
                    images, transformation["layer"], training=True
                )
        else:
            applied = self.layer(images, training=True)
        applied = self.backend.cast(applied, _FLOAT)
        if tuple(applied.shape) != tuple(images.shape):
            raise ValueError(
                "RandomApply needs a layer that keeps the image shape. "
                f"{self.layer.name} maps {tuple(images.shape)} to "
                f"{tuple(applied.shape)}."
            )
        return self.backend.numpy.where(
            _broadcast(transformation["apply"]), applied, images
        )

    def _transform_planes(self, planes, transformation, channels_last=False):
        """See `_ImageLayer._transform_planes`. A stage (see `_is_stage`) runs on
        the planes as they are; another layer runs on images."""
        np_ = self.backend.numpy
        if not _is_stage(self.layer):
            images = self._select(np_.transpose(planes, (0, 2, 3, 1)), transformation)
            images = np_.clip(images, 0.0, 1.0)
            return images if channels_last else _to_planes(self.backend, images)
        with _SharedBackend(self.backend, [self.layer]):
            applied = self.layer._transform_planes(planes, transformation["layer"])
        selected = np_.where(_broadcast(transformation["apply"]), applied, planes)
        return _channels_last(self.backend, selected, channels_last)

    def _output_images(self, images):
        images = self.backend.numpy.clip(images, 0.0, 1.0)
        return self.backend.cast(images, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        # Nothing to compile here: the wrapped layer decides for itself.
        config.pop("jit_compile", None)
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "probability": self.probability,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
