"""keras_simclr.visualization: the pictures are PNGs of the documented layout, and the
names they had in `augment` and `evaluation` still reach them."""

import doctest
import logging
import struct
import sys

import keras
import numpy as np
import pytest
import threadpoolctl

import keras_simclr
from keras_simclr import augment
from keras_simclr import evaluation
from keras_simclr import visualization

from clusters import flatten_encoder
from clusters import gaussian_clusters

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == PNG_SIGNATURE
    return struct.unpack(">II", header[16:24])


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


def _csv_log(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    path = str(tmp_path / "log.csv")
    x, y = np.random.default_rng(0).random((32, 3)), np.arange(32) % 2
    model.fit(x, y, epochs=3, verbose=0, callbacks=[keras.callbacks.CSVLogger(path)])
    return path


@pytest.mark.parametrize("source", ["history", "dict", "csv"])
def test_plot_training_curves_writes_a_png(tmp_path, source):
    history = keras.callbacks.History()
    history.history = {
        "loss": [3.0, 2.0, 1.5],
        "val_loss": [3.2, 2.5, 2.0],
        "probe_accuracy": [0.2, 0.4, 0.5],
    }
    metrics = visualization._DEFAULT_CURVES
    if source == "dict":
        history = history.history
    elif source == "csv":
        history, metrics = _csv_log(tmp_path), ("loss", "accuracy")
    path = str(tmp_path / "plots" / "curves.png")
    assert visualization.plot_training_curves(history, path, metrics) == path
    width, height = _png_size(path)
    assert (width, height) == (900, 350)  # two panels of 4.5 x 3.5 inches at 100 dpi


def test_plot_training_curves_needs_a_known_metric(tmp_path):
    with pytest.raises(ValueError, match=r"none of the metrics .* Received keys: \['lr'\]"):
        visualization.plot_training_curves({"lr": [0.1]}, str(tmp_path / "c.png"))


@pytest.mark.parametrize("method, num_classes", [("pca", 3), ("pca", 30), ("tsne", 3)])
def test_plot_embedding_writes_a_png(tmp_path, method, num_classes):
    if method == "tsne":
        pytest.importorskip("sklearn")
    features, labels, _ = gaussian_clusters(400, num_classes, 5, separation=6.0, seed=0)
    path = str(tmp_path / "embedding.png")
    # One OpenMP thread: t-SNE's threads ran 5x slower on the shared test machine.
    with threadpoolctl.threadpool_limits(limits=1):
        assert visualization.plot_embedding(features, labels, path, method, max_points=150) == path
    assert _png_size(path) == (650, 550)
    image = pytest.importorskip("matplotlib.image").imread(path)
    assert image[..., :3].std() > 0.05  # points were drawn


def test_plot_embedding_from_an_encoder(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (60, 4, 4, 1)).astype("uint8")
    path = str(tmp_path / "embedding.png")
    visualization.plot_embedding(
        flatten_encoder((4, 4, 1)), (images, np.arange(60) % 4), path,
        class_names=["a", "b", "c", "d"],
    )
    assert _png_size(path) == (650, 550)


def test_plotting_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install keras-simclr\[plot\]"):
        visualization.plot_training_curves({"loss": [1.0]}, str(tmp_path / "c.png"))
    with pytest.raises(ImportError, match=r"pip install keras-simclr\[plot\]"):
        visualization.plot_embedding(np.zeros((4, 2)), np.arange(4), str(tmp_path / "e.png"))


def test_tsne_without_scikit_learn(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    features, labels, _ = gaussian_clusters(50, 2, 3, separation=4.0, seed=0)
    with pytest.raises(ImportError, match="method='tsne' needs scikit-learn"):
        visualization.plot_embedding(features, labels, str(tmp_path / "e.png"), "tsne")
    with caplog.at_level(logging.INFO, logger="keras_simclr.visualization"):
        visualization.plot_embedding(features, labels, str(tmp_path / "e.png"), "auto")
    assert "plotting PCA instead of t-SNE" in caplog.text
    assert _png_size(str(tmp_path / "e.png")) == (650, 550)


@pytest.mark.parametrize(
    "module, name",
    [
        (augment, "plot_views"),
        (evaluation, "plot_training_curves"),
        (evaluation, "plot_embedding"),
    ],
)
def test_the_former_names_are_the_same_functions(module, name):
    assert getattr(module, name) is getattr(visualization, name)


def test_docstring_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write PNGs
    globs = {"keras": keras, "keras_simclr": keras_simclr, "np": np, **vars(visualization)}
    results = doctest.testmod(visualization, globs=globs, raise_on_error=True)
    assert results.attempted >= 7
    for name in ("views.png", "curves.png", "embedding.png"):
        assert (tmp_path / name).exists(), name
