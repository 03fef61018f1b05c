"""keras_simclr.augment.presets: SimCLRAugment is the composition of its stages, with
the paper's probabilities as arguments; crop_and_flip is the geometric part."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import augment

from .layers import binomial_ok
from .layers import draw
from .layers import random_images


# Composition ----------------------------------------------------------------------


# At 16 px the blur's radius is 0 (the colour drop runs alone); at 48 px it is 2 and
# the colour drop runs in the blur's passes; 80 examples take the blurred-subset path.
@pytest.mark.parametrize("size, batch", [(16, 16), (48, 16), (48, 80)])
def test_simclr_augment_is_the_composition_of_its_stages(size, batch):
    images = random_images(batch, size + 8)
    layer = augment.SimCLRAugment(size, seed=3)
    transformation = layer.get_random_transformation(images)
    result = layer.transform_images(images, transformation).numpy()
    expected = layer.crop.transform_images(images, transformation["crop"]).numpy()
    flips = transformation["flip"].numpy()
    expected = np.where(flips[:, None, None, None], expected[:, :, ::-1], expected)
    for name in ("color_jitter", "color_drop", "gaussian_blur"):
        stage = getattr(layer, name)
        expected = stage.transform_images(expected, transformation[name]).numpy()
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert flips.any() and not flips.all()


def test_two_view_tf_data_pipeline_is_reproducible():
    images = (random_images(32, 20, seed=9) * 255).astype(np.uint8)

    def run():
        layer = augment.SimCLRAugment(16, preset="cifar", seed=4)
        dataset = tf.data.Dataset.from_tensor_slices(images).batch(8)
        dataset = dataset.map(lambda x: (layer(x), layer(x)))
        return [np.stack([a.numpy(), b.numpy()]) for a, b in dataset]

    first, second = run(), run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a[0], a[1])  # the two views of a batch differ


def test_grayscale_preset_needs_one_channel():
    with pytest.raises(ValueError, match="1-channel"):
        augment.SimCLRAugment(8, preset="grayscale")(random_images(2, 8))


# Stage probabilities ----------------------------------------------------------------


def test_stage_probabilities_default_to_the_paper():
    layer = augment.SimCLRAugment(8)
    assert (layer.color_jitter.probability, layer.color_drop.probability) == (0.8, 0.2)
    assert layer.gaussian_blur.probability == 0.5


@pytest.mark.parametrize(
    "key, argument, probability",
    [
        ("color_jitter", "color_jitter_probability", 0.3),
        ("color_drop", "color_drop_probability", 0.6),
        ("gaussian_blur", "blur_probability", 0.9),
    ],
)
def test_stage_probabilities_are_arguments(key, argument, probability):
    n = 20_000
    layer = augment.SimCLRAugment(8, seed=0, **{argument: probability})
    applied = draw(layer, (n, 8, 8, 3))[key]["apply"]
    assert binomial_ok(applied.sum(), n, probability), applied.mean()
    config = layer.get_config()
    assert config[argument] == probability
    restored = augment.SimCLRAugment.from_config(config)
    assert getattr(restored, key).probability == probability


def test_a_config_without_stage_probabilities_uses_the_paper_ones():
    # Configs saved before the probabilities were arguments lack them.
    config = augment.SimCLRAugment(8, seed=0, name="views").get_config()
    old_config = dict(config)
    for argument in (
        "color_jitter_probability",
        "color_drop_probability",
        "blur_probability",
    ):
        del old_config[argument]
    assert augment.SimCLRAugment.from_config(old_config).get_config() == config


# Saving ---------------------------------------------------------------------------


def test_model_with_augmentation_survives_saving(tmp_path):
    inputs = keras.Input((24, 24, 3), dtype="uint8")
    views = augment.SimCLRAugment(16, preset="imagenet", seed=71)(inputs)
    extra = augment.RandomApply(augment.ColorJitter(1.0, 1.0), 0.5, seed=72)(views)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(extra))
    path = tmp_path / "augment.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert [type(layer) for layer in restored.layers] == [
        type(layer) for layer in model.layers
    ]
    images = (random_images(6, 24, seed=11) * 255).astype(np.uint8)
    # Keras saves no random-generator state: both start from the seeds.
    for _ in range(2):
        np.testing.assert_allclose(
            model(images, training=True).numpy(),
            restored(images, training=True).numpy(),
            atol=1e-5,
        )


# Fine-tuning augmentation ---------------------------------------------------------


def test_crop_and_flip_is_the_geometric_part_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = augment.crop_and_flip(16, seed=3, scale=(0.5, 1.0))
        images = np.tile(np.linspace(0, 255, 32, dtype="float32")[None, :, None], (32, 1, 1))
        batch = np.repeat(images[None].astype("uint8"), 64, axis=0)
        views = np.asarray(layer(batch))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert views.shape == (64, 16, 16, 1) and views.dtype == np.float32
    assert 0.0 <= views.min() and views.max() <= 1.0
    # A horizontal ramp: flipped views decrease from left to right, others increase.
    slopes = np.sign(views[:, 8, -1, 0] - views[:, 8, 0, 0])
    assert 10 < np.sum(slopes < 0) < 54 and np.sum(slopes > 0) == 64 - np.sum(slopes < 0)
