"""keras_simclr.augment: equal to tf.image, distributed as the paper says, per example,
seeded, and the same in tf.data, in a model, under XLA, across replicas and after
saving."""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import augment

# Binomial / mean checks use 5 standard deviations: a false alarm about once in
# 1.7 million runs, while a wrong probability (e.g. 0.5 for 0.8) fails by > 30 sigma.
SIGMAS = 5.0


def _images(n, size=16, channels=3, seed=0):
    height, width = (size, size) if isinstance(size, int) else size
    return np.random.default_rng(seed).random((n, height, width, channels), np.float32)


def _draw(layer, shape):
    """Draws one batch of parameters for images of `shape` without allocating them."""

    @tf.function
    def draw():
        return layer.get_random_transformation(tf.zeros(shape), training=True)

    return tf.nest.map_structure(lambda t: t.numpy(), draw())


def _binomial_ok(hits, n, p):
    return abs(hits / n - p) <= SIGMAS * math.sqrt(p * (1 - p) / n)


def _layers(seed=0, jit_compile=True):
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


LAYER_NAMES = list(_layers())


def _input_for(name, n=8, size=24, seed=0):
    return _images(n, size, channels=1 if name == "grayscale" else 3, seed=seed)


# Equal to the straightforward tf.image computation ---------------------------------


@pytest.mark.parametrize(
    "boxes, output_size",
    [
        ([[0, 0, 16, 16], [3, 2, 5, 9], [10, 11, 6, 5], [0, 15, 16, 1]], (20, 12)),
        ([[1, 1, 14, 15], [0, 0, 2, 2], [4, 0, 12, 16], [8, 8, 8, 8]], (7, 9)),
    ],
)
def test_crop_equals_tf_image_crop_and_bicubic_resize(boxes, output_size):
    images = _images(4, 16)
    boxes = np.array(boxes, np.float32)
    layer = augment.RandomResizedCrop(*output_size)
    result = layer.transform_images(tf.constant(images), {"boxes": boxes}).numpy()
    for image, box, out in zip(images, boxes.astype(int), result):
        expected = tf.image.resize(
            tf.image.crop_to_bounding_box(image, *box), output_size, "bicubic"
        )
        np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-5)


def _reference_jitter(image, order, factors, impl):
    """SimCLR's reference color_jitter_rand on one image, with fixed factors."""
    image = tf.constant(image)
    for op in order:
        if op == 0:
            if impl == "simclrv2":
                image = image * factors["brightness"]
            else:
                image = tf.image.adjust_brightness(image, factors["brightness"])
        elif op == 1:
            image = tf.image.adjust_contrast(image, factors["contrast"])
        elif op == 2:
            image = tf.image.adjust_saturation(image, factors["saturation"])
        else:
            image = tf.image.adjust_hue(image, factors["hue"])
        image = tf.clip_by_value(image, 0.0, 1.0)
    return image.numpy()


@pytest.mark.parametrize("impl", ["simclrv2", "simclrv1"])
@pytest.mark.parametrize("channels", [3, 1])
def test_color_jitter_equals_tf_image_in_every_order(impl, channels):
    orders = np.array(list(itertools.permutations(range(4))), np.int32)
    n = len(orders)
    rng = np.random.default_rng(1)
    factors = {
        "brightness": (
            rng.uniform(-0.8, 0.8, n)
            if impl == "simclrv1"
            else rng.uniform(0.2, 1.8, n)
        ),
        "contrast": rng.uniform(0.2, 1.8, n),
        "saturation": rng.uniform(0.2, 1.8, n),
        "hue": rng.uniform(-0.2, 0.2, n),
    }
    factors = {key: value.astype(np.float32) for key, value in factors.items()}
    images = _images(n, 12, channels=channels, seed=2)
    transformation = dict(factors, order=orders, apply=np.arange(n) % 5 != 0)
    layer = augment.ColorJitter(impl=impl)
    result = layer.transform_images(tf.constant(images), transformation).numpy()
    for i in range(n):
        if not transformation["apply"][i]:
            np.testing.assert_array_equal(result[i], images[i])
            continue
        rgb = np.repeat(images[i], 3, axis=-1) if channels == 1 else images[i]
        expected = _reference_jitter(
            rgb, orders[i], {k: v[i] for k, v in factors.items()}, impl
        )
        np.testing.assert_allclose(result[i], expected[..., :channels], atol=2e-6)


def test_color_drop_equals_rgb_to_grayscale():
    images = _images(6, 10)
    apply = np.array([True, False, True, True, False, True])
    result = (
        augment.RandomColorDrop().transform_images(images, {"apply": apply}).numpy()
    )
    gray = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(images)).numpy()
    np.testing.assert_allclose(
        result, np.where(apply[:, None, None, None], gray, images), atol=1e-6
    )


def _blur_cases():
    # (100, 4): the radius (5) exceeds the width, so the borders reflect more than
    # once. Batches of 64 blur a subset of 49 examples (the expected 32 plus four
    # standard deviations, plus one): 20 selected take that path, 60 the whole-batch
    # path; compiled and op by op.
    rng = np.random.default_rng(5)
    four = np.array([True, True, False, True])
    cases = [(size, four, True) for size in [(64, 48), (40, 40), (100, 4)]]
    for count in (20, 49, 60):
        apply = np.zeros(64, bool)
        apply[rng.choice(64, count, replace=False)] = True
        cases += [((40, 40), apply, True), ((40, 40), apply, False)]
    return cases


@pytest.mark.parametrize("size, apply, jit_compile", _blur_cases())
def test_gaussian_blur_equals_reflect_padded_separable_filter(size, apply, jit_compile):
    height, width = size
    images = _images(len(apply), size)
    sigma = np.random.default_rng(6).uniform(0.1, 2.0, len(apply)).astype(np.float32)
    layer = augment.RandomGaussianBlur(jit_compile=jit_compile)
    result = layer.transform_images(images, {"apply": apply, "sigma": sigma}).numpy()
    radius = height // 20  # kernel side = height // 10, odd
    for image, s, applied, out in zip(images, sigma, apply, result):
        if not applied:
            np.testing.assert_array_equal(out, image)
            continue
        taps = np.arange(-radius, radius + 1)
        kernel = np.exp(-(taps**2) / (2 * s**2))
        kernel /= kernel.sum()
        padded = np.pad(image, ((radius, radius), (radius, radius), (0, 0)), "reflect")
        rows = sum(k * padded[j : j + height] for j, k in enumerate(kernel))
        expected = sum(k * rows[:, j : j + width] for j, k in enumerate(kernel))
        np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize(
    "image_size, output_size",
    [((256, 300), (224, 224)), ((300, 200), (64, 32)), ((40, 40), (32, 48))],
)
def test_center_crop_equals_reference_center_crop(image_size, output_size):
    images = _images(2, image_size)
    result = augment.CenterCropResize(*output_size)(images).numpy()
    (height, width), (out_h, out_w) = image_size, output_size
    # The reference's _compute_crop_shape, with aspect = width / height of the output.
    aspect, proportion = out_w / out_h, 0.875
    if aspect > width / height:
        crop_h, crop_w = round(proportion / aspect * width), round(proportion * width)
    else:
        crop_h, crop_w = round(proportion * height), round(proportion * aspect * height)
    top, left = (height - crop_h + 1) // 2, (width - crop_w + 1) // 2
    window = images[:, top : top + crop_h, left : left + crop_w]
    expected = np.clip(tf.image.resize(window, output_size, "bicubic"), 0, 1)
    np.testing.assert_allclose(result, expected, atol=1e-5)


# At 16 px the blur's radius is 0 (the colour drop runs alone); at 48 px it is 2 and
# the colour drop runs in the blur's passes; 80 examples take the blurred-subset path.
@pytest.mark.parametrize("size, batch", [(16, 16), (48, 16), (48, 80)])
def test_simclr_augment_is_the_composition_of_its_stages(size, batch):
    images = _images(batch, size + 8)
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


# Distributions ---------------------------------------------------------------------


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
    transformation = _draw(layer, (n, 8, 8, 3))
    for part in key if isinstance(key, tuple) else (key,):
        transformation = transformation[part]
    assert transformation.shape == (n,)
    assert _binomial_ok(transformation.sum(), n, probability), transformation.mean()


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
    images = _images(400, 20, seed=4)
    transformation = layer.get_random_transformation(images)
    result = layer.transform_images(images, transformation).numpy()
    changed = np.abs(result - images).max(axis=(1, 2, 3)) > 1e-6
    np.testing.assert_array_equal(changed, transformation[key].numpy())


def _numpy_crop_areas(n, height, width, scale, ratio, attempts, rng):
    """NumPy version of the sampler the layer documents: area fraction U(scale),
    log aspect ratio U(log ratio), rounded sides, first fitting attempt."""
    area = height * width * rng.uniform(*scale, (n, attempts))
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (n, attempts)))
    w, h = np.round(np.sqrt(area * aspect)), np.round(np.sqrt(area / aspect))
    valid = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
    first = valid.argmax(axis=1)
    rows = np.arange(n)
    return (w * h)[rows, first] / (height * width), valid.any(axis=1)


@pytest.mark.parametrize("image_size", [(500, 500), (300, 480)])
def test_crop_boxes_follow_the_documented_sampler(image_size):
    height, width = image_size
    n = 20_000
    layer = augment.RandomResizedCrop(32, 32, seed=5)
    boxes = _draw(layer, (n, height, width, 3))["boxes"]
    top, left, crop_h, crop_w = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + crop_h <= height).all() and (left + crop_w <= width).all()
    assert (boxes == np.round(boxes)).all()
    fraction = crop_h * crop_w / (height * width)
    # Rounding each side moves the area by at most about one pixel row/column.
    slack = (crop_h + crop_w + 1) / (height * width)
    assert (fraction >= 0.08 - slack).all() and (fraction <= 1.0).all()
    aspect = crop_w / crop_h
    assert (aspect >= 3 / 4 * (1 - 1 / crop_h) - 1 / crop_h).all()
    assert (aspect <= 4 / 3 * (1 + 1 / crop_h) + 1 / crop_h).all()
    # 30 attempts instead of 100 change the distribution only when all 30 fail
    # (probability below 1e-10 for these shapes).
    reference_n = 300_000
    reference, found = _numpy_crop_areas(
        reference_n,
        height,
        width,
        (0.08, 1.0),
        (3 / 4, 4 / 3),
        30,
        np.random.default_rng(0),
    )
    assert found.all()
    standard_error = math.hypot(
        fraction.std() / math.sqrt(n), reference.std() / math.sqrt(reference_n)
    )
    assert abs(fraction.mean() - reference.mean()) <= SIGMAS * standard_error
    # Offsets are uniform: the box centre spreads over the free range.
    free = height - crop_h
    relative = np.where(free > 0, top / np.maximum(free, 1), 0.5)
    assert abs(relative[free > 50].mean() - 0.5) < 0.02


@pytest.mark.parametrize(
    "image_size, ratio, expected",
    [
        ((100, 100), (2.0, 3.0), (25, 0, 50, 100)),
        ((60, 200), (0.5, 1.0), (0, 70, 60, 60)),
    ],
)
def test_crop_falls_back_to_the_central_crop(image_size, ratio, expected):
    layer = augment.RandomResizedCrop(
        8, 8, scale=(0.99, 1.0), ratio=ratio, max_attempts=5, seed=0
    )
    boxes = _draw(layer, (64, *image_size, 3))["boxes"]
    np.testing.assert_array_equal(
        boxes, np.tile(np.array(expected, np.float32), (64, 1))
    )


@pytest.mark.parametrize("impl", ["simclrv2", "simclrv1"])
@pytest.mark.parametrize("strength", [1.0, 0.5, 1.5])
def test_jitter_factors_and_orders_follow_the_paper(impl, strength):
    n = 24_000
    t = _draw(augment.ColorJitter(strength=strength, impl=impl, seed=6), (n, 2, 2, 3))
    low, high = max(0.0, 1 - 0.8 * strength), 1 + 0.8 * strength
    bounds = {
        "brightness": (
            (-0.8 * strength, 0.8 * strength) if impl == "simclrv1" else (low, high)
        ),
        "contrast": (low, high),
        "saturation": (low, high),
        "hue": (-0.2 * strength, 0.2 * strength),
    }
    for key, (lower, upper) in bounds.items():
        values = t[key]
        assert values.min() >= lower and values.max() <= upper, key
        uniform_std = (upper - lower) / math.sqrt(12)
        assert abs(
            values.mean() - (lower + upper) / 2
        ) <= SIGMAS * uniform_std / math.sqrt(n), key
    orders = t["order"]
    assert (np.sort(orders, axis=1) == np.arange(4)).all()
    counts = {}
    for row in map(tuple, orders):
        counts[row] = counts.get(row, 0) + 1
    assert len(counts) == 24
    assert all(_binomial_ok(count, n, 1 / 24) for count in counts.values()), counts


def test_fixed_order_jitter_uses_the_reference_order():
    t = _draw(augment.ColorJitter(random_order=False, seed=0), (50, 2, 2, 3))
    assert (t["order"] == np.arange(4)).all()


def test_blur_sigma_is_uniform_per_example():
    n = 20_000
    sigma = _draw(augment.RandomGaussianBlur(sigma=(0.1, 2.0), seed=7), (n, 4, 4, 3))[
        "sigma"
    ]
    assert sigma.min() >= 0.1 and sigma.max() <= 2.0
    assert abs(sigma.mean() - 1.05) <= SIGMAS * (1.9 / math.sqrt(12)) / math.sqrt(n)
    assert len(np.unique(sigma)) > n * 0.99


# Per example, seeded, deterministic --------------------------------------------------


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_views_of_identical_images_differ_within_a_batch(name):
    layer = _layers()[name]
    images = np.repeat(_input_for(name, n=1), 12, axis=0)
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
    images = _input_for(name)
    first, again, other = (
        _layers(seed=11)[name],
        _layers(seed=11)[name],
        _layers(seed=12)[name],
    )
    views = [first(images).numpy(), first(images).numpy()]
    np.testing.assert_array_equal(views[0], again(images).numpy())
    np.testing.assert_array_equal(views[1], again(images).numpy())
    assert not np.array_equal(views[0], views[1])  # two calls: two views
    assert not np.array_equal(views[0], other(images).numpy())


@pytest.mark.parametrize("name", ["simclr", "grayscale", "crop", "apply"])
def test_tf_data_model_and_eager_give_the_same_views(name):
    images = (_input_for(name, n=12, seed=8) * 255).astype(np.uint8)

    eager_layer = _layers(seed=21)[name]
    eager = [eager_layer(images[i : i + 4]).numpy() for i in (0, 4, 8)]

    data_layer = _layers(seed=21)[name]
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4).map(data_layer)
    in_data = [batch.numpy() for batch in dataset]

    model_layer = _layers(seed=21)[name]
    inputs = keras.Input(images.shape[1:], dtype="uint8")
    model = keras.Model(inputs, model_layer(inputs))
    step = tf.function(lambda x: model(x, training=True))
    in_model = [step(images[i : i + 4]).numpy() for i in (0, 4, 8)]

    for a, b, c in zip(eager, in_data, in_model):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-5)


def test_two_view_tf_data_pipeline_is_reproducible():
    images = (_images(32, 20, seed=9) * 255).astype(np.uint8)

    def run():
        layer = augment.SimCLRAugment(16, preset="cifar", seed=4)
        dataset = tf.data.Dataset.from_tensor_slices(images).batch(8)
        dataset = dataset.map(lambda x: (layer(x), layer(x)))
        return [np.stack([a.numpy(), b.numpy()]) for a, b in dataset]

    first, second = run(), run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a[0], a[1])  # the two views of a batch differ


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_compiled_kernels_compute_the_op_by_op_views(name):
    # jit_compile=False runs the same maths op by op, as on backends other than
    # TensorFlow; the random draws are the same, so the views must be too.
    images = _input_for(name, size=(24, 20), seed=12)
    compiled = _layers(seed=81)[name]
    op_by_op = _layers(seed=81, jit_compile=False)[name]
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
    images = _input_for(name, n=6, size=20)
    layer = _layers(seed=31)[name]
    transformation = layer.get_random_transformation(images)
    graph = tf.function(layer.transform_images)(images, transformation)
    xla = tf.function(layer.transform_images, jit_compile=True)(images, transformation)
    np.testing.assert_allclose(graph.numpy(), xla.numpy(), atol=2e-5)


@pytest.mark.slow
def test_xla_views_are_seeded():
    # XLA draws other random numbers than TensorFlow's kernels for the same seed
    # (its own stateless RNG), but the same ones on every run.
    images = _input_for("simclr", n=6, size=20)

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
    images = (_images(4, 20, seed=10) * 255).astype(np.uint8)
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


# Inputs, outputs, validation ---------------------------------------------------------


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_uint8_input_equals_float_input_divided_by_255(name):
    images = (_input_for(name) * 255).astype(np.uint8)
    as_uint8 = _layers(seed=51)[name](images).numpy()
    as_float = _layers(seed=51)[name](images.astype(np.float32) / 255).numpy()
    np.testing.assert_allclose(as_uint8, as_float, atol=1e-6)


@pytest.mark.parametrize("name", LAYER_NAMES + ["center"])
@pytest.mark.parametrize("batched", [True, False])
def test_outputs_are_float32_in_unit_range_with_documented_shape(name, batched):
    layer = augment.CenterCropResize(12, 10) if name == "center" else _layers()[name]
    images = _input_for(name, size=(24, 20)) * 1.5 - 0.25  # out-of-range floats too
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
    result = augment.ColorJitter(seed=0, dtype="bfloat16")(_images(2, 8))
    assert result.dtype == tf.bfloat16


def test_inference_mode():
    images = _images(4, 16)
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


def test_grayscale_preset_needs_one_channel():
    with pytest.raises(ValueError, match="1-channel"):
        augment.SimCLRAugment(8, preset="grayscale")(_images(2, 8))


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
        (lambda: augment.ColorJitter(jit_compile=None), "jit_compile"),
    ],
)
def test_invalid_arguments_raise_value_errors_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*Received: {argument}="):
        make()


# Serialisation ---------------------------------------------------------------------


def _serializable_layers():
    layers = _layers(seed=61)
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
    images = _input_for("grayscale" if name == "grayscale" else name)
    np.testing.assert_allclose(
        layer(images).numpy(), restored(images).numpy(), atol=1e-6
    )
    by_name = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(by_name) is type(layer) and by_name.get_config() == layer.get_config()


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
    images = (_images(6, 24, seed=11) * 255).astype(np.uint8)
    # Keras saves no random-generator state: both start from the seeds.
    for _ in range(2):
        np.testing.assert_allclose(
            model(images, training=True).numpy(),
            restored(images, training=True).numpy(),
            atol=1e-5,
        )


# Visualisation ---------------------------------------------------------------------


@pytest.mark.parametrize("channels, preset", [(3, "cifar"), (1, "grayscale")])
def test_plot_views_writes_a_png_grid(tmp_path, channels, preset):
    images = (_images(5, 20, channels=channels) * 255).astype(np.uint8)
    path = augment.plot_views(
        images,
        augment.SimCLRAugment(16, preset=preset, seed=0),
        n=3,
        path=tmp_path / "v.png",
    )
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(
        data[20:24], "big"
    )
    assert width < height * 1.5  # 3 columns (image + 2 views) for 3 rows


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
