"""keras_simclr.visualization: the pictures are PNGs of the documented layout, and the
names they had in `augment` and `evaluation` still reach them."""

import numpy as np
import pytest

from keras_simclr import augment
from keras_simclr import visualization

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _random_images(n, size, channels, seed=0):
    return np.random.default_rng(seed).random((n, size, size, channels), np.float32)


@pytest.mark.parametrize("channels, preset", [(3, "cifar"), (1, "grayscale")])
def test_plot_views_writes_a_png_grid(tmp_path, channels, preset):
    images = (_random_images(5, 20, channels=channels) * 255).astype(np.uint8)
    path = visualization.plot_views(
        images,
        augment.SimCLRAugment(16, preset=preset, seed=0),
        n=3,
        path=tmp_path / "v.png",
    )
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(
        data[20:24], "big"
    )
    assert width < height * 1.5  # 3 columns (image + 2 views) for 3 rows


@pytest.mark.parametrize("module, name", [(augment, "plot_views")])
def test_the_former_names_are_the_same_functions(module, name):
    assert getattr(module, name) is getattr(visualization, name)
