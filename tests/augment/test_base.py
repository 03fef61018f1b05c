"""keras_simclr.augment.base: the contract every layer keeps. Per example, seeded, the
same in tf.data, in a model, compiled or not, across replicas and after saving;
uint8 and float input; validation that says what was received."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import augment
from keras_simclr.augment import base

from .layers import LAYER_NAMES
from .layers import binomial_ok
from .layers import draw
from .layers import input_for
from .layers import make_layers
from .layers import random_images


# Probabilities --------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, key, probability",
    [
        (augment.ColorJitter(seed=0), "apply", 0.8),
        (augment.RandomColorDrop(seed=0), "apply", 0.2),
        (augment.RandomGaussianBlur(seed=0), "apply", 0.5),
        (augment.RandomApply(augment.RandomColorDrop(1.0), 0.3, seed=0), "apply", 0.3),
        (augment.SimCLRAugment(8, seed=0), "flip", 0.5),
        (augment.SimCLRAugment(8, seed=0), ("color_jitter", "apply"), 0.8),
        (augment.SimCLRAugment(8, seed=0), ("color_drop", "apply"), 0.2),
        (augment.SimCLRAugment(8, seed=0), ("gaussian_blur", "apply"), 0.5),
    ],
)
def test_apply_fractions_are_within_binomial_bounds(layer, key, probability):
    n = 20_000
    transformation = draw(layer, (n, 8, 8, 3))
    for part in key if isinstance(key, tuple) else (key,):
        transformation = transformation[part]
    assert transformation.shape == (n,)
    assert binomial_ok(transformation.sum(), n, probability), transformation.mean()


@pytest.mark.parametrize(
    "layer, key",
    [
        (augment.ColorJitter(seed=1), "apply"),
        (augment.RandomColorDrop(seed=1), "apply"),
        (augment.RandomGaussianBlur(sigma=(0.5, 2.0), seed=1), "apply"),
        (augment.RandomApply(augment.RandomColorDrop(1.0), 0.3, seed=1), "apply"),
    ],
)
def test_images_change_exactly_where_the_operation_applies(layer, key):
    images = random_images(400, 20, seed=4)
    transformation = layer.get_random_transformation(images)
    result = layer.transform_images(images, transformation).numpy()
    changed = np.abs(result - images).max(axis=(1, 2, 3)) > 1e-6
    np.testing.assert_array_equal(changed, transformation[key].numpy())


# Per example, seeded, deterministic -----------------------------------------------


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_views_of_identical_images_differ_within_a_batch(name):
    layer = make_layers()[name]
    images = np.repeat(input_for(name, n=1), 12, axis=0)
    transformation = layer.get_random_transformation(images)
    views = layer.transform_images(images, transformation).numpy().reshape(12, -1)
    distinct = len({tuple(np.round(view, 5)) for view in views})
    if name in ("drop", "apply"):
        # Applied examples differ from the unapplied ones (all equal to the input);
        # colour drop maps every applied copy to the same gray image.
        applied = int(transformation["apply"].numpy().sum())
        assert 0 < applied < 12
        assert distinct == (2 if name == "drop" else applied + 1)
    else:
        assert distinct == 12


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_same_seed_same_views_other_seed_other_views(name):
    images = input_for(name)
    first, again, other = (
        make_layers(seed=11)[name],
        make_layers(seed=11)[name],
        make_layers(seed=12)[name],
    )
    views = [first(images).numpy(), first(images).numpy()]
    np.testing.assert_array_equal(views[0], again(images).numpy())
    np.testing.assert_array_equal(views[1], again(images).numpy())
    assert not np.array_equal(views[0], views[1])  # two calls: two views
    assert not np.array_equal(views[0], other(images).numpy())


@pytest.mark.parametrize("name", ["simclr", "grayscale", "crop", "apply"])
def test_tf_data_model_and_eager_give_the_same_views(name):
    images = (input_for(name, n=12, seed=8) * 255).astype(np.uint8)

    eager_layer = make_layers(seed=21)[name]
    eager = [eager_layer(images[i : i + 4]).numpy() for i in (0, 4, 8)]

    data_layer = make_layers(seed=21)[name]
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4).map(data_layer)
    in_data = [batch.numpy() for batch in dataset]

    model_layer = make_layers(seed=21)[name]
    inputs = keras.Input(images.shape[1:], dtype="uint8")
    model = keras.Model(inputs, model_layer(inputs))
    step = tf.function(lambda x: model(x, training=True))
    in_model = [step(images[i : i + 4]).numpy() for i in (0, 4, 8)]

    for a, b, c in zip(eager, in_data, in_model):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-5)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_compiled_kernels_compute_the_op_by_op_views(name):
    # jit_compile=False runs the same maths op by op, as on backends other than
    # TensorFlow; the random draws are the same, so the views must be too.
    images = input_for(name, size=(24, 20), seed=12)
    compiled = make_layers(seed=81)[name]
    op_by_op = make_layers(seed=81, jit_compile=False)[name]
    for _ in range(2):
        np.testing.assert_allclose(
            compiled(images).numpy(), op_by_op(images).numpy(), atol=1e-5
        )


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: augment.SimCLRAugment(16, seed=13), (16, 16, 3)),
        (lambda: augment.CenterCropResize(16, 12), (16, 12, 3)),
    ],
)
def test_images_of_different_sizes_map_one_by_one_before_batching(make, shape):
    # Decoded ImageNet files have all sizes: mapped before batching, the layer sees
    # images of unknown height and width, which are not compiled per size.
    rng = np.random.default_rng(14)
    images = [
        (rng.random((height, width, 3)) * 255).astype(np.uint8)
        for height, width in [(20, 30), (31, 17), (24, 24)]
    ]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(images),
        output_signature=tf.TensorSpec((None, None, 3), tf.uint8),
    )
    in_data = [view.numpy() for view in dataset.map(make())]
    eager_layer = make()
    eager = [eager_layer(image).numpy() for image in images]
    for a, b in zip(in_data, eager):
        assert a.shape == b.shape == shape
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simclr", "grayscale"])
def test_xla_computes_the_same_views_for_the_same_parameters(name):
    images = input_for(name, n=6, size=20)
    layer = make_layers(seed=31)[name]
    transformation = layer.get_random_transformation(images)
    graph = tf.function(layer.transform_images)(images, transformation)
    xla = tf.function(layer.transform_images, jit_compile=True)(images, transformation)
    np.testing.assert_allclose(graph.numpy(), xla.numpy(), atol=2e-5)


@pytest.mark.slow
def test_xla_views_are_seeded():
    # XLA draws other random numbers than TensorFlow's kernels for the same seed
    # (its own stateless RNG), but the same ones on every run.
    images = input_for("simclr", n=6, size=20)

    def run():
        layer = augment.SimCLRAugment(16, seed=32)
        step = tf.function(lambda x: layer(x, training=True), jit_compile=True)
        return [step(images).numpy() for _ in range(2)]

    first, second = run(), run()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])


@pytest.mark.distributed
def test_replicas_draw_different_views_and_replica_0_matches_one_device(
    two_cpu_strategy,
):
    images = (random_images(4, 20, seed=10) * 255).astype(np.uint8)
    with two_cpu_strategy.scope():
        layer = augment.SimCLRAugment(16, preset="cifar", seed=41)

    @tf.function
    def step():
        return two_cpu_strategy.run(lambda: layer(tf.constant(images), training=True))

    def per_replica(result):
        return [t.numpy() for t in two_cpu_strategy.experimental_local_results(result)]

    first, second = per_replica(step()), per_replica(step())
    assert not np.array_equal(first[0], first[1])  # replicas augment differently
    assert not np.array_equal(first[0], second[0])  # and the state advances
    single = augment.SimCLRAugment(16, preset="cifar", seed=41)
    np.testing.assert_allclose(first[0], single(images).numpy(), atol=1e-6)
    np.testing.assert_allclose(second[0], single(images).numpy(), atol=1e-6)


# Inputs, outputs, validation ------------------------------------------------------


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_uint8_input_equals_float_input_divided_by_255(name):
    images = (input_for(name) * 255).astype(np.uint8)
    as_uint8 = make_layers(seed=51)[name](images).numpy()
    as_float = make_layers(seed=51)[name](images.astype(np.float32) / 255).numpy()
    np.testing.assert_allclose(as_uint8, as_float, atol=1e-6)


@pytest.mark.parametrize("name", LAYER_NAMES + ["center"])
@pytest.mark.parametrize("batched", [True, False])
def test_outputs_are_float32_in_unit_range_with_documented_shape(name, batched):
    layer = augment.CenterCropResize(12, 10) if name == "center" else make_layers()[name]
    images = input_for(name, size=(24, 20)) * 1.5 - 0.25  # out-of-range floats too
    images = images if batched else images[0]
    result = layer(images)
    assert result.dtype == tf.float32
    assert result.numpy().min() >= 0.0 and result.numpy().max() <= 1.0
    spatial = {"crop": (12, 12), "center": (12, 10)}.get(name)
    if name in ("simclr", "cifar", "grayscale"):
        spatial = (16, 16)
    expected = (*images.shape[:-3], *(spatial or images.shape[-3:-1]), images.shape[-1])
    assert tuple(result.shape) == expected
    assert tuple(layer.compute_output_shape(images.shape)) == expected


def test_dtype_policy_sets_the_output_dtype():
    result = augment.ColorJitter(seed=0, dtype="bfloat16")(random_images(2, 8))
    assert result.dtype == tf.bfloat16


def test_inference_mode():
    images = random_images(4, 16)
    for layer in (
        augment.ColorJitter(1.0, 1.0),
        augment.RandomColorDrop(1.0),
        augment.RandomGaussianBlur(1.0),
    ):
        np.testing.assert_array_equal(layer(images, training=False).numpy(), images)
    whole = np.clip(tf.image.resize(images, (8, 8), "bicubic"), 0, 1)
    np.testing.assert_allclose(
        augment.RandomResizedCrop(8, 8)(images, training=False), whole, atol=1e-5
    )
    np.testing.assert_allclose(
        augment.SimCLRAugment(8)(images, training=False), whole, atol=1e-5
    )


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((32, 32), np.float32), "rank 3"),
        (np.zeros((2, 2, 8, 8, 3), np.float32), "rank 3"),
        (np.zeros((2, 8, 8, 5), np.float32), "channels"),
        (np.zeros((2, 8, 8, 2), np.float32), "channels"),
        (tf.constant([[["a"]]]), "dtype"),
        (np.zeros((2, 8, 8, 3), np.int32), "dtype"),
        (np.zeros((2, 8, 8, 3), bool), "dtype"),
        ({"images": np.zeros((2, 8, 8, 3))}, "dict"),
    ],
)
def test_invalid_images_raise_value_errors_that_say_what_was_received(images, message):
    with pytest.raises(ValueError, match=message) as error:
        augment.SimCLRAugment(8, seed=0)(images)
    assert "Received" in str(error.value)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: augment.RandomResizedCrop(0, 8), "height"),
        (lambda: augment.RandomResizedCrop(8, 8, scale=(0.5, 0.2)), "scale"),
        (lambda: augment.RandomResizedCrop(8, 8, scale=(0.0, 1.0)), "scale"),
        (lambda: augment.RandomResizedCrop(8, 8, ratio=(0, 1)), "ratio"),
        (lambda: augment.RandomResizedCrop(8, 8, max_attempts=0), "max_attempts"),
        (lambda: augment.RandomResizedCrop(8, 8, seed=1.5), "seed"),
        (lambda: augment.ColorJitter(strength=-1.0), "strength"),
        (lambda: augment.ColorJitter(probability=1.5), "probability"),
        (lambda: augment.ColorJitter(impl="simclrv3"), "impl"),
        (lambda: augment.ColorJitter(random_order="yes"), "random_order"),
        (lambda: augment.RandomColorDrop(probability=-0.1), "probability"),
        (lambda: augment.RandomGaussianBlur(sigma=(0.0, 1.0)), "sigma"),
        (
            lambda: augment.RandomGaussianBlur(kernel_size_fraction=0.0),
            "kernel_size_fraction",
        ),
        (lambda: augment.RandomApply("not a layer", 0.5), "layer"),
        (
            lambda: augment.CenterCropResize(8, 8, crop_proportion=1.5),
            "crop_proportion",
        ),
        (lambda: augment.SimCLRAugment((8, 0)), "image_size"),
        (lambda: augment.SimCLRAugment(8, preset="stl10"), "preset"),
        (lambda: augment.SimCLRAugment(8, blur="yes"), "blur"),
        (lambda: augment.SimCLRAugment(8, jit_compile="yes"), "jit_compile"),
        (
            lambda: augment.SimCLRAugment(8, color_jitter_probability=1.5),
            "color_jitter_probability",
        ),
        (
            lambda: augment.SimCLRAugment(8, color_drop_probability="0.2"),
            "color_drop_probability",
        ),
        (lambda: augment.SimCLRAugment(8, blur_probability=-0.5), "blur_probability"),
        (lambda: augment.ColorJitter(jit_compile=None), "jit_compile"),
    ],
)
def test_invalid_arguments_raise_value_errors_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*Received: {argument}="):
        make()


# Serialisation --------------------------------------------------------------------


def _serializable_layers():
    layers = make_layers(seed=61)
    layers["center"] = augment.CenterCropResize(12, 10, crop_proportion=0.9)
    layers["v1_fixed_order"] = augment.ColorJitter(0.5, 0.7, False, "simclrv1", seed=3)
    layers["keras_inner"] = augment.RandomApply(
        keras.layers.RandomContrast(0.3, value_range=(0, 1), seed=1), 0.4, seed=2
    )
    layers["op_by_op"] = augment.SimCLRAugment(
        (16, 12), preset="cifar", jit_compile=False, seed=4
    )
    return layers


@pytest.mark.parametrize("name", list(_serializable_layers()))
def test_config_round_trip_rebuilds_an_identical_layer(name):
    layer = _serializable_layers()[name]
    config = layer.get_config()
    restored = type(layer).from_config(config)
    assert restored.get_config() == config
    images = input_for("grayscale" if name == "grayscale" else name)
    np.testing.assert_allclose(
        layer(images).numpy(), restored(images).numpy(), atol=1e-6
    )
    by_name = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(by_name) is type(layer) and by_name.get_config() == layer.get_config()


LEGACY = pathlib.Path(__file__).parent / "legacy_layout"


def test_a_model_saved_with_the_single_module_layout_loads_and_gives_its_views():
    # Saved at commit d3b1aa0, when every layer lived in keras_simclr/augment.py: a
    # model of all seven layers (seeded) and its views of two uint8 images.
    model = keras.saving.load_model(LEGACY / "augment_layers.keras")
    saved = np.load(LEGACY / "augment_layers.npz")
    classes = {type(layer).__name__: type(layer) for layer in model.layers}
    for name in (
        "RandomResizedCrop",
        "CenterCropResize",
        "ColorJitter",
        "RandomColorDrop",
        "RandomGaussianBlur",
        "RandomApply",
        "SimCLRAugment",
    ):
        assert classes[name] is getattr(augment, name)
    views = model(saved["images"], training=True).numpy()
    np.testing.assert_allclose(views, saved["views"], atol=1e-6)


def test_compiled_kernels_are_shared_by_every_layer():
    images = random_images(4, 12)
    augment.ColorJitter(probability=1.0, seed=0)(images)
    compiled = dict(base._COMPILED_KERNELS)
    augment.ColorJitter(probability=1.0, seed=1)(images)
    assert base._COMPILED_KERNELS == compiled
