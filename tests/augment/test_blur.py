"""keras_simclr.augment.blur: equal to a reflect-padded separable Gaussian filter, with
a uniform sigma per example."""

import math

import numpy as np
import pytest

from keras_simclr import augment

from .layers import SIGMAS
from .layers import draw
from .layers import random_images


# Equal to the straightforward computation -----------------------------------------


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
    images = random_images(len(apply), size)
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


# Distributions --------------------------------------------------------------------


def test_blur_sigma_is_uniform_per_example():
    n = 20_000
    sigma = draw(augment.RandomGaussianBlur(sigma=(0.1, 2.0), seed=7), (n, 4, 4, 3))[
        "sigma"
    ]
    assert sigma.min() >= 0.1 and sigma.max() <= 2.0
    assert abs(sigma.mean() - 1.05) <= SIGMAS * (1.9 / math.sqrt(12)) / math.sqrt(n)
    assert len(np.unique(sigma)) > n * 0.99
