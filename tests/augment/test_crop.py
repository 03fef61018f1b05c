"""keras_simclr.augment.crop: the crops equal tf.image's crop and bicubic resize, and
the boxes follow the documented sampler."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import augment

from .layers import SIGMAS
from .layers import draw
from .layers import random_images


# Equal to the straightforward tf.image computation --------------------------------


@pytest.mark.parametrize(
    "boxes, output_size",
    [
        ([[0, 0, 16, 16], [3, 2, 5, 9], [10, 11, 6, 5], [0, 15, 16, 1]], (20, 12)),
        ([[1, 1, 14, 15], [0, 0, 2, 2], [4, 0, 12, 16], [8, 8, 8, 8]], (7, 9)),
    ],
)
def test_crop_equals_tf_image_crop_and_bicubic_resize(boxes, output_size):
    images = random_images(4, 16)
    boxes = np.array(boxes, np.float32)
    layer = augment.RandomResizedCrop(*output_size)
    result = layer.transform_images(tf.constant(images), {"boxes": boxes}).numpy()
    for image, box, out in zip(images, boxes.astype(int), result):
        expected = tf.image.resize(
            tf.image.crop_to_bounding_box(image, *box), output_size, "bicubic"
        )
        np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-5)


@pytest.mark.parametrize(
    "image_size, output_size",
    [((256, 300), (224, 224)), ((300, 200), (64, 32)), ((40, 40), (32, 48))],
)
def test_center_crop_equals_reference_center_crop(image_size, output_size):
    images = random_images(2, image_size)
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


# Distributions --------------------------------------------------------------------


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
    boxes = draw(layer, (n, height, width, 3))["boxes"]
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
    boxes = draw(layer, (64, *image_size, 3))["boxes"]
    np.testing.assert_array_equal(
        boxes, np.tile(np.array(expected, np.float32), (64, 1))
    )
