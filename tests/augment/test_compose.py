"""keras_simclr.augment.compose, and a new stage joining the fused pipeline.

`RandomSolarize` below is a stage written only against the batched-planes contract
of `keras_simclr.augment.base` (as docs/architecture.md describes): it must run alone,
inside `RandomApply`, and fused into a `SimCLRAugment` with the paper's stages,
giving the views of the stages applied one after the other.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import augment
from keras_simclr import checks
from keras_simclr.augment import base

from .layers import random_images


def _solarize_kernel(backend, planes, apply, threshold, channels_last=False):
    np_ = backend.numpy
    solarized = np_.where(planes >= threshold, 1.0 - planes, planes)
    result = np_.where(base._broadcast(apply), solarized, planes)
    return base._channels_last(backend, result, channels_last)


@keras.saving.register_keras_serializable(package="keras_simclr_tests")
class RandomSolarize(base._ImageLayer):
    """Inverts the pixels at or above `threshold` of each example, with a probability."""

    def __init__(self, probability=0.2, threshold=0.5, seed=None, jit_compile=True, **kwargs):
        super().__init__(seed=seed, jit_compile=jit_compile, **kwargs)
        self.probability = checks.probability("probability", probability)
        self.threshold = float(threshold)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        draws = self.backend.random.uniform(
            (self._batch_size(data),), seed=self._seed(seed), dtype="float32"
        )
        return {"apply": draws < self.probability}

    def _transform_planes(self, planes, transformation, channels_last=False):
        return self._kernel(_solarize_kernel)(
            planes,
            transformation["apply"],
            threshold=self.threshold,
            channels_last=channels_last,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"probability": self.probability, "threshold": self.threshold})
        return config


@keras.saving.register_keras_serializable(package="keras_simclr_tests")
class SolarizedSimCLRAugment(augment.SimCLRAugment):
    """SimCLRAugment with a solarisation stage after the blur (BYOL's recipe adds one)."""

    def __init__(self, image_size, solarize_probability=0.2, wrapped=False, seed=None, **kwargs):
        super().__init__(image_size, seed=seed, **kwargs)
        self.solarize_probability = solarize_probability
        self.wrapped = wrapped
        if wrapped:
            # The stage inside RandomApply, itself a stage.
            self.solarize = augment.RandomApply(
                RandomSolarize(1.0, jit_compile=self.jit_compile),
                solarize_probability,
                seed=base._sub_seed(seed, 6),
                name="solarize",
            )
        else:
            self.solarize = RandomSolarize(
                solarize_probability,
                seed=base._sub_seed(seed, 6),
                jit_compile=self.jit_compile,
                name="solarize",
            )

    def _stages(self):
        return [*super()._stages(), ("solarize", self.solarize)]

    def get_config(self):
        config = super().get_config()
        config.update(
            {"solarize_probability": self.solarize_probability, "wrapped": self.wrapped}
        )
        return config


@pytest.mark.parametrize("jit_compile", [True, False])
def test_a_new_stage_alone_equals_its_numpy_reference(jit_compile):
    images = random_images(6, 10)
    apply = np.array([True, False, True, True, False, True])
    layer = RandomSolarize(jit_compile=jit_compile)
    result = layer.transform_images(images, {"apply": apply}).numpy()
    solarized = np.where(images >= 0.5, 1.0 - images, images)
    expected = np.where(apply[:, None, None, None], solarized, images)
    np.testing.assert_allclose(result, expected, atol=1e-7)


@pytest.mark.parametrize("inner", ["stage", "keras_layer"])
def test_random_apply_runs_on_planes_as_on_images(inner):
    layer = augment.RandomApply(
        RandomSolarize(1.0)
        if inner == "stage"
        else keras.layers.RandomContrast(0.5, value_range=(0, 1), seed=1),
        0.5,
        seed=2,
    )
    images = random_images(16, 12)
    transformation = layer.get_random_transformation(images)
    on_images = layer.transform_images(images, transformation).numpy()
    planes = tf.transpose(images, (0, 3, 1, 2))
    for channels_last in (True, False):
        on_planes = layer._transform_planes(planes, transformation, channels_last)
        if not channels_last:
            on_planes = tf.transpose(on_planes, (0, 2, 3, 1))
        np.testing.assert_allclose(on_planes.numpy(), on_images, atol=1e-6)
    applied = transformation["apply"].numpy()
    assert applied.any() and not applied.all()


@pytest.mark.parametrize("wrapped", [False, True], ids=["stage", "in_random_apply"])
def test_a_new_stage_runs_fused_in_simclr_augment(wrapped):
    images = random_images(16, 56)
    layer = SolarizedSimCLRAugment(48, solarize_probability=0.5, wrapped=wrapped, seed=3)
    transformation = layer.get_random_transformation(images)
    result = layer.transform_images(images, transformation).numpy()
    # The stages one after the other, each on images.
    expected = layer.crop.transform_images(images, transformation["crop"]).numpy()
    flips = transformation["flip"].numpy()
    expected = np.where(flips[:, None, None, None], expected[:, :, ::-1], expected)
    for name in ("color_jitter", "color_drop", "gaussian_blur", "solarize"):
        stage = getattr(layer, name)
        expected = stage.transform_images(expected, transformation[name]).numpy()
    np.testing.assert_allclose(result, expected, atol=1e-6)
    solarized = transformation["solarize"]["apply"].numpy()
    assert solarized.any() and not solarized.all()
    # It ran as a compiled kernel, as the paper's stages do.
    assert any(kernel is _solarize_kernel for kernel, _ in base._COMPILED_KERNELS)


def test_a_pipeline_with_a_new_stage_is_seeded_serialisable_and_runs_in_tf_data():
    images = (random_images(8, 24, seed=5) * 255).astype(np.uint8)
    layer = SolarizedSimCLRAugment(16, preset="cifar", seed=7)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is SolarizedSimCLRAugment
    assert restored.get_config() == layer.get_config()
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4).map(layer)
    in_data = np.concatenate([batch.numpy() for batch in dataset])
    eager = np.concatenate([restored(images[i : i + 4]).numpy() for i in (0, 4)])
    np.testing.assert_allclose(in_data, eager, atol=1e-5)
    assert in_data.shape == (8, 16, 16, 3) and 0.0 <= in_data.min() <= in_data.max() <= 1.0
