"""keras_simclr.data.pipelines: two-view pretraining batches, evaluation batches,
resizing; images of different sizes; several replicas."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import augment
from keras_simclr import data
from keras_simclr.data import pipelines

from .image_files import crop_and_resize
from .image_files import images_of
from .image_files import images_of_different_sizes
from .image_files import reference_center_crop
from .image_files import write_image


# Resizing.


@pytest.mark.parametrize(
    "shape, image_size", [((60, 20), 10), ((20, 60), 10), ((40, 40), (10, 20))]
)
def test_resize_keeps_the_central_window(shape, image_size):
    """Only the centred window of the target aspect ratio may reach the output."""
    height, width = shape
    target = (image_size, image_size) if isinstance(image_size, int) else image_size
    image = np.full((height, width, 3), 255, np.uint8)
    crop_h = min(height, round(width * target[0] / target[1]))
    crop_w = min(width, round(height * target[1] / target[0]))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    image[top : top + crop_h, left : left + crop_w] = 100
    out = pipelines._resize_image(tf.constant(image), target).numpy()
    assert out.shape == (*target, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, 100)
    # A batch of images of one size goes through the same crop.
    batch = np.stack([image, 255 - image])
    batch_out = pipelines._resize_image(tf.constant(batch), target).numpy()
    np.testing.assert_array_equal(batch_out[0], out)
    np.testing.assert_array_equal(batch_out[1], 155)


def test_resize_upsamples_small_images_and_rounds():
    image = np.arange(4 * 4 * 1, dtype=np.uint8).reshape(4, 4, 1) * 10
    out = pipelines._resize_image(tf.constant(image), (8, 8)).numpy()
    assert out.shape == (8, 8, 1)
    assert out.min() >= image.min() and out.max() <= image.max()
    # Each output pixel sits between its neighbours: the mean is preserved.
    assert abs(out.astype(float).mean() - image.mean()) < 1.0


# Pretraining batches.


def _flip_views(seed):
    flip = keras.layers.RandomFlip("horizontal", seed=seed)

    def augment(images):
        return flip(tf.cast(images, tf.float32) / 255.0)

    return augment


def _asymmetric_images(n, size=4):
    """Images that change under a horizontal flip, each with a distinct first pixel."""
    images = np.zeros((n, size, size, 1), np.uint8)
    images[:, :, 0, 0] = np.arange(n)[:, None] + 1
    return images


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
@pytest.mark.parametrize("augmented", [True, False], ids=["views", "raw"])
def test_pretraining_batch_structure(labelled, augmented):
    images = _asymmetric_images(10)
    source = (images, np.arange(10) % 3) if labelled else images
    dataset = data.pretraining_dataset(
        source, 4, augment=_flip_views(0) if augmented else None, seed=1
    )
    batch = next(iter(dataset))
    assert len(batch) == (2 if labelled else 1)
    if augmented:
        view_1, view_2 = batch[0]
        for view in (view_1, view_2):
            assert view.shape == (4, 4, 4, 1) and view.dtype == tf.float32
    else:
        assert batch[0].shape == (4, 4, 4, 1) and batch[0].dtype == tf.uint8
    if labelled:
        assert batch[1].shape == (4,) and batch[1].dtype == tf.int64


def test_pretraining_carries_the_clean_images_for_the_probe():
    images = _asymmetric_images(10)
    labels = np.arange(10) % 3
    dataset = data.pretraining_dataset(
        (images, labels), 4, augment=_flip_views(0), seed=1, probe_images=True
    )
    plain = data.pretraining_dataset((images, labels), 4, augment=_flip_views(0), seed=1)
    for (x, batch_labels), ((view_1, view_2), plain_labels) in zip(
        dataset.take(3), plain.take(3)
    ):
        assert set(x) == {"views", "images"}
        # The images are the batch's own, in its order, as they are (uint8): each
        # image's first pixel is its index plus one.
        assert x["images"].dtype == tf.uint8
        index = x["images"].numpy()[:, 0, 0, 0].astype(int) - 1
        np.testing.assert_array_equal(x["images"], images[index])
        np.testing.assert_array_equal(batch_labels, labels[index])
        # The same order and the same views as without them.
        np.testing.assert_array_equal(batch_labels, plain_labels)
        np.testing.assert_array_equal(x["views"][0], view_1)
        np.testing.assert_array_equal(x["views"][1], view_2)
    # A callable prepares them (here: to float, halved).
    halved = data.pretraining_dataset(
        (images, labels), 4, augment=_flip_views(0), seed=1,
        probe_images=lambda batch: tf.cast(batch, tf.float32) / 2,
    )
    x, batch_labels = next(iter(halved))
    index = (2 * x["images"].numpy()[:, 0, 0, 0]).astype(int) - 1
    np.testing.assert_array_equal(x["images"], images[index] / 2)
    np.testing.assert_array_equal(batch_labels, labels[index])


def test_pretraining_carries_clean_images_of_different_sizes_prepared_one_by_one():
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in [(20, 9), (8, 30)]]
    source = tf.data.Dataset.zip(images_of_different_sizes(images), tf.data.Dataset.range(2))
    center = augment.CenterCropResize(6, 5)
    dataset = data.pretraining_dataset(
        source, 2, augment=augment.RandomResizedCrop(6, 5, seed=2), seed=1,
        shuffle_buffer=0, probe_images=center,
    )
    x, labels = next(iter(dataset))
    assert x["views"][0].shape == x["views"][1].shape == (2, 6, 5, 3)
    np.testing.assert_array_equal(labels, [0, 1])
    for clean, image in zip(x["images"].numpy(), images):
        np.testing.assert_allclose(clean, center(image[None])[0], atol=1e-6)
    with pytest.raises(ValueError, match="different sizes.*CenterCropResize"):
        data.pretraining_dataset(
            source, 2, augment=augment.RandomResizedCrop(6, 5), probe_images=True
        )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"probe_images": "yes"}, TypeError, "probe_images='yes'"),
        ({"augment": None}, ValueError, "without `augment` the batches are the clean"),
        ({"labels": False}, ValueError, "needs labels"),
    ],
)
def test_probe_images_need_views_and_labels(kwargs, error, message):
    source = (_asymmetric_images(4), np.arange(4) % 2)
    kwargs = {"augment": _flip_views(0), "probe_images": True, **kwargs}
    with pytest.raises(error, match=message):
        data.pretraining_dataset(source, 2, **kwargs)


def test_pretraining_epochs_are_permutations_and_batches_full():
    dataset = data.pretraining_dataset(_asymmetric_images(10), 5, seed=2)
    batches = [b[0].numpy()[:, 0, 0, 0] for b in dataset.take(6)]
    assert all(len(b) == 5 for b in batches)
    for epoch in range(3):
        assert sorted(np.concatenate(batches[2 * epoch : 2 * epoch + 2])) == list(
            range(1, 11)
        )
    assert not all(np.array_equal(batches[0], b) for b in batches[2::2])  # reshuffled
    finite = data.pretraining_dataset(_asymmetric_images(10), 4, repeat=False)
    assert [b[0].shape[0] for b in finite] == [4, 4]  # the remainder of 2 is dropped


def test_pretraining_views_are_random_per_example_and_per_view():
    images = _asymmetric_images(64)
    dataset = data.pretraining_dataset(images, 64, augment=_flip_views(5), seed=0)
    ((view_1, view_2),) = next(iter(dataset))
    flipped_1 = view_1.numpy()[:, :, 0, 0].sum(axis=1) == 0
    flipped_2 = view_2.numpy()[:, :, 0, 0].sum(axis=1) == 0
    # p = 0.5 per example and per view: 64 draws land far from all-or-nothing.
    assert 10 < flipped_1.sum() < 54 and 10 < flipped_2.sum() < 54
    assert 5 < (flipped_1 != flipped_2).sum() < 59


def test_pretraining_same_seed_same_order_and_views():
    images = _asymmetric_images(40)

    def run(seed, layer_seed):
        dataset = data.pretraining_dataset(
            (images, np.arange(40)), 4, augment=_flip_views(layer_seed), seed=seed
        )
        return [
            np.concatenate([v1.numpy().ravel(), v2.numpy().ravel(), y.numpy()])
            for (v1, v2), y in dataset.take(40)
        ]

    first = run(seed=11, layer_seed=3)
    np.testing.assert_array_equal(first, run(seed=11, layer_seed=3))
    assert not np.array_equal(first, run(seed=12, layer_seed=3))


def test_pretraining_labels_false_and_dict_source():
    source = tf.data.Dataset.from_tensor_slices(
        {"image": _asymmetric_images(6), "label": np.arange(6, dtype=np.int32)}
    )
    with_labels = next(iter(data.pretraining_dataset(source, 3, seed=0)))
    assert with_labels[1].dtype == tf.int64
    np.testing.assert_array_equal(
        with_labels[0].numpy()[:, 0, 0, 0] - 1, with_labels[1].numpy()
    )
    without = next(iter(data.pretraining_dataset(source, 3, labels=False)))
    assert len(without) == 1


@pytest.mark.parametrize("cache", [True, "file"])
def test_pretraining_cache_keeps_order_and_reshuffles(tmp_path, cache):
    if cache == "file":
        cache = str(tmp_path / "cache")
    images = _asymmetric_images(12)

    def firsts(**kwargs):
        dataset = data.pretraining_dataset(images, 4, seed=7, **kwargs)
        return [b[0].numpy()[:, 0, 0, 0].tolist() for b in dataset.take(9)]

    cached = firsts(cache=cache)
    assert cached == firsts()
    assert cached[:3] != cached[3:6]  # epochs still differ after caching
    if isinstance(cache, str):
        assert any(name.startswith("cache") for name in os.listdir(tmp_path))


def test_pretraining_shards_by_input_pipeline():
    images = _asymmetric_images(16)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=4
        )
        dataset = data.pretraining_dataset(
            images, 8, repeat=False, seed=0, input_context=context
        )
        batches = [b[0].numpy()[:, 0, 0, 0] for b in dataset]
        assert all(len(b) == 2 for b in batches)  # per-replica batch: 8 / 4
        seen.append(np.concatenate(batches))
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(np.concatenate(seen)) == list(range(1, 17))


@pytest.mark.parametrize(
    "source, kwargs, error, message",
    [
        (
            np.zeros((4, 3, 3, 1), np.uint8),
            {"batch_size": 0},
            ValueError,
            "batch_size=0",
        ),
        (
            np.zeros((4, 3, 3, 1), np.uint8),
            {"shuffle_buffer": -1},
            ValueError,
            "shuffle_buffer=-1",
        ),
        (
            np.zeros((4, 3, 3, 1), np.uint8),
            {"augment": "flip"},
            TypeError,
            "augment='flip'",
        ),
        (np.zeros((4, 3, 3, 1), np.uint8), {"cache": 1}, TypeError, "cache=1"),
        ([1, 2, 3], {}, TypeError, "Received: list"),
        (np.zeros((4, 3), np.uint8), {}, ValueError, r"\(n, H, W, C\)"),
        (np.zeros((4, 3, 3, 1), np.int32), {}, ValueError, "dtype int32"),
        (
            (np.zeros((4, 3, 3, 1), np.uint8), np.zeros(3, int)),
            {},
            ValueError,
            "one label per image",
        ),
        (np.zeros((0, 3, 3, 1), np.uint8), {}, ValueError, "empty"),
        (
            tf.data.Dataset.from_tensor_slices(
                (np.zeros((2, 3, 3, 1)), [0, 1], [0, 1])
            ),
            {},
            ValueError,
            "3 components",
        ),
    ],
)
def test_pretraining_rejects_bad_arguments(source, kwargs, error, message):
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(error, match=message):
        data.pretraining_dataset(source, **kwargs)


def test_pretraining_with_simclr_augment():
    """The paper's augmentation on the host: float views in [0, 1], reproducible."""
    augment_module = pytest.importorskip("keras_simclr.augment")
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)

    def views():
        augment = augment_module.SimCLRAugment(32, seed=1)
        dataset = data.pretraining_dataset(images, 4, augment=augment, seed=0)
        return [np.stack(pair) for (pair,) in dataset.take(3)]

    first = views()
    view_1, view_2 = first[0]
    assert view_1.shape == (4, 32, 32, 3) and view_1.dtype == np.float32
    assert 0.0 <= view_1.min() and view_1.max() <= 1.0
    assert not np.allclose(view_1, view_2)
    np.testing.assert_array_equal(first, views())


def test_pretraining_crops_images_of_different_sizes_from_the_original():
    # 448 wide and 336 tall. Without colour changes (the grayscale preset's jitter at
    # strength 0), a view is its crop, resized, and its flip alone.
    image = np.random.default_rng(3).integers(0, 256, (336, 448, 1), dtype=np.uint8)

    def make():
        return augment.SimCLRAugment(
            (48, 64), preset="grayscale", color_jitter_strength=0.0, seed=9
        )

    source = images_of_different_sizes([image])
    dataset = data.pretraining_dataset(source, 1, augment=make(), seed=0)
    ((view_1, view_2),) = next(iter(dataset))
    # The two crops of an image are drawn as the layer draws those of a batch of two.
    drawn = make().get_random_transformation(tf.zeros((2, 336, 448, 1)))
    boxes, flips = drawn["crop"]["boxes"].numpy(), drawn["flip"].numpy()
    assert not np.array_equal(boxes[0], boxes[1])
    for view, box, flip in zip((view_1[0], view_2[0]), boxes, flips):
        expected = crop_and_resize(image, box, (48, 64))
        expected = expected[:, ::-1] if flip else expected
        np.testing.assert_allclose(view.numpy(), expected, atol=1e-5)


def test_folder_of_images_of_different_sizes_pretrains_and_evaluates(tmp_path):
    sizes = {
        "cat/a.jpg": (336, 448),
        "cat/b.png": (300, 200),
        "dog/c.png": (120, 160),
        "dog/d.png": (97, 255),
    }
    for i, (name, (height, width)) in enumerate(sizes.items()):
        write_image(tmp_path / name, height, width, seed=i)
    source = data.load(f"folder:{tmp_path}")

    def views():
        simclr = augment.SimCLRAugment(32, preset="cifar", seed=1)
        dataset = data.pretraining_dataset(source, 2, augment=simclr, seed=4)
        return [(v1.numpy(), v2.numpy(), y.numpy()) for (v1, v2), y in dataset.take(4)]

    first = views()
    for view_1, view_2, labels in first:
        assert view_1.shape == view_2.shape == (2, 32, 32, 3)
        assert view_1.dtype == np.float32 and 0 <= view_1.min() <= view_1.max() <= 1
        assert not np.allclose(view_1, view_2)
        assert set(labels) <= {0, 1}
    for a, b in zip(first, views()):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)

    # Evaluation: the central 87.5% of each original image, resized once.
    center = augment.CenterCropResize(24, 40)
    batches = list(data.evaluation_dataset(source, 3, preprocess=center))
    assert [len(labels) for _, labels in batches] == [3, 1]
    images = np.concatenate([images for images, _ in batches])
    for image, original in zip(images, images_of(source)):
        expected = reference_center_crop(original, (24, 40))
        np.testing.assert_allclose(image, expected, atol=1e-5)


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_pretraining_maps_another_augment_over_images_of_different_sizes(labelled):
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in [(20, 9), (8, 30)]]
    source = images_of_different_sizes(images)
    if labelled:
        source = tf.data.Dataset.zip(source, tf.data.Dataset.range(2))
    crop = augment.RandomResizedCrop(6, 5, seed=2)
    batch = next(iter(data.pretraining_dataset(source, 2, augment=crop, seed=1)))
    view_1, view_2 = batch[0]
    assert view_1.shape == view_2.shape == (2, 6, 5, 3)
    assert not np.allclose(view_1, view_2)
    assert len(batch) == (2 if labelled else 1)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda source: data.pretraining_dataset(source, 2),
            r"different sizes \(element shape \(None, None, 3\)\).*augment=",
        ),
        (
            lambda source: data.pretraining_dataset(source, 2, augment=lambda x: x),
            r"one size.*Received views of shape \(None, None, 3\)",
        ),
        (
            lambda source: data.evaluation_dataset(
                tf.data.Dataset.zip(source, tf.data.Dataset.range(2)), 2
            ),
            r"different sizes.*preprocess=",
        ),
        (
            lambda source: data.evaluation_dataset(
                tf.data.Dataset.zip(source, tf.data.Dataset.range(2)),
                2,
                preprocess=lambda x: tf.cast(x, tf.float32),
            ),
            r"one size.*Received outputs of shape \(None, None, 3\)",
        ),
        (
            lambda source: data.pretraining_dataset(source.map(lambda x: x[..., 0]), 2),
            r"known number of channels.*Received element shape \(None, None\)",
        ),
    ],
)
def test_images_of_different_sizes_need_a_crop_to_be_batched(call, message):
    images = [np.zeros((4, 6, 3), np.uint8), np.zeros((5, 3, 3), np.uint8)]
    with pytest.raises(ValueError, match=message):
        call(images_of_different_sizes(images))


# Evaluation batches.


def test_evaluation_keeps_order_and_every_example():
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 3, 1), dtype=np.uint8)
    labels = np.arange(10)
    batches = list(data.evaluation_dataset((images, labels), 4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)
    got = np.concatenate([x for x, _ in batches])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, images / 255.0, rtol=1e-6)
    flipped = data.evaluation_dataset(
        (images, labels),
        4,
        preprocess=lambda x: tf.cast(x[:, :, ::-1], tf.float32) / 255.0,
    )
    np.testing.assert_allclose(
        np.concatenate([x for x, _ in flipped]), images[:, :, ::-1] / 255.0, rtol=1e-6
    )


def test_evaluation_needs_labels():
    with pytest.raises(ValueError, match="needs labels"):
        data.evaluation_dataset(np.zeros((4, 3, 3, 1), np.uint8), 2)


# Several replicas.


@pytest.mark.distributed
def test_two_replicas_share_the_one_device_global_batch(
    two_cpu_strategy, one_cpu_strategy
):
    images = _asymmetric_images(32)

    def first_steps(strategy, steps=3):
        dataset = data.distributed_pretraining_dataset(
            strategy, lambda: images, 8, seed=4
        )
        iterator = iter(dataset)
        out = []
        for _ in range(steps):
            (batch,) = next(iterator)
            parts = [
                p.numpy()[:, 0, 0, 0]
                for p in strategy.experimental_local_results(batch)
            ]
            out.append(parts)
        return out

    two = first_steps(two_cpu_strategy)
    one = first_steps(one_cpu_strategy)
    for replicas, single in zip(two, one):
        assert [len(part) for part in replicas] == [4, 4]
        assert sorted(np.concatenate(replicas)) == sorted(single[0])


@pytest.mark.distributed
def test_distributed_dataset_trains_with_fit(two_cpu_strategy):
    images = _asymmetric_images(16)
    labels = np.arange(16) % 2
    with two_cpu_strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((4, 4, 1)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Flatten(),
                keras.layers.Dense(2),
            ]
        )
        model.compile(
            "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    dataset = data.distributed_pretraining_dataset(
        two_cpu_strategy, (images, labels), 8, seed=0
    )
    history = model.fit(dataset, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.distributed
def test_distributed_batch_must_divide_by_replicas(two_cpu_strategy):
    with pytest.raises(ValueError, match="batch_size=7 with 2 replicas.*e.g. 6 or 8"):
        data.distributed_pretraining_dataset(two_cpu_strategy, lambda: None, 7)
