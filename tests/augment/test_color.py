"""keras_simclr.augment.color: the jitter equals tf.image's adjust_* in every order, the
colour drop rgb_to_grayscale; factors and orders follow the paper."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import augment

from .layers import SIGMAS
from .layers import binomial_ok
from .layers import draw
from .layers import random_images


# Equal to the straightforward tf.image computation --------------------------------


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
    images = random_images(n, 12, channels=channels, seed=2)
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
    images = random_images(6, 10)
    apply = np.array([True, False, True, True, False, True])
    result = (
        augment.RandomColorDrop().transform_images(images, {"apply": apply}).numpy()
    )
    gray = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(images)).numpy()
    np.testing.assert_allclose(
        result, np.where(apply[:, None, None, None], gray, images), atol=1e-6
    )


# Distributions --------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["simclrv2", "simclrv1"])
@pytest.mark.parametrize("strength", [1.0, 0.5, 1.5])
def test_jitter_factors_and_orders_follow_the_paper(impl, strength):
    n = 24_000
    t = draw(augment.ColorJitter(strength=strength, impl=impl, seed=6), (n, 2, 2, 3))
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
    assert all(binomial_ok(count, n, 1 / 24) for count in counts.values()), counts


def test_fixed_order_jitter_uses_the_reference_order():
    t = draw(augment.ColorJitter(random_order=False, seed=0), (50, 2, 2, 3))
    assert (t["order"] == np.arange(4)).all()
