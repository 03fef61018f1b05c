"""keras_simclr.data.idx: Fashion-MNIST from its IDX files, checked, sliced like tfds."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_simclr import data
from keras_simclr.data import pipelines
from idx_files import write_fashion_mnist
from idx_files import write_idx

from .image_files import images_of

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_fashion_mnist_reader_returns_the_written_arrays(tmp_path, compress):
    arrays = write_fashion_mnist(tmp_path, compress=compress)
    for split in ("train", "test"):
        images, labels = data.load_fashion_mnist(tmp_path, split)
        assert images.dtype == np.uint8 and images.shape == (len(labels), 28, 28, 1)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images[..., 0], arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])


def test_fashion_mnist_reader_slices_like_tfds(tmp_path):
    arrays = write_fashion_mnist(tmp_path, sizes=(10, 4))
    images, labels = data.load_fashion_mnist(tmp_path, "train[:50%]+test[-1:]")
    np.testing.assert_array_equal(
        labels, np.concatenate([arrays["train"][1][:5], arrays["test"][1][-1:]])
    )
    assert images.shape == (6, 28, 28, 1)
    assert (
        data.info("fashion_mnist", "train[:50%]+test[-1:]", tmp_path).num_examples == 6
    )


def _truncate_images(directory):
    images = np.zeros((6, 28, 28), np.uint8)
    write_idx(directory / "train-images-idx3-ubyte", images, truncate=100)


def _swap_magic(directory):
    labels = np.zeros(6, np.uint8)
    write_idx(directory / "train-labels-idx1-ubyte", labels, magic=2051)


def _delete_labels(directory):
    os.remove(directory / "train-labels-idx1-ubyte.gz")


def _fewer_labels(directory):
    write_idx(directory / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))


def _label_out_of_range(directory):
    write_idx(directory / "train-labels-idx1-ubyte", np.full(6, 10, np.uint8))


def _wrong_image_size(directory):
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((6, 27, 28), np.uint8))


def _cut_gzip_stream(directory):
    path = directory / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])


def _not_gzip(directory):
    (directory / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data")


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (_truncate_images, ValueError, r"truncated or corrupt"),
        (_swap_magic, ValueError, r"magic number 2051.*labels file has 2049"),
        (_delete_labels, FileNotFoundError, r"train-labels-idx1-ubyte\.gz.*missing"),
        (_fewer_labels, ValueError, r"6 images but .* 5 labels"),
        (_label_out_of_range, ValueError, r"label 10.*0-9"),
        (_wrong_image_size, ValueError, r"28x28"),
        (_cut_gzip_stream, ValueError, r"corrupt or truncated"),
        (_not_gzip, ValueError, r"corrupt or truncated"),
    ],
)
def test_fashion_mnist_reader_rejects_damaged_files(tmp_path, damage, error, message):
    write_fashion_mnist(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=message) as caught:
        data.load_fashion_mnist(tmp_path, "train")
    assert "dataset-fashion-mnist" in str(caught.value)  # says how to fix it
    # The other split's files are intact and still load.
    assert data.load_fashion_mnist(tmp_path, "test")[0].shape == (4, 28, 28, 1)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda d: data.load_fashion_mnist(d / "missing"), FileNotFoundError, "exist"),
        (lambda d: data.load_fashion_mnist(d, "validation"), ValueError, "'test'"),
        (lambda d: data.load_fashion_mnist(d, "train[:abc]"), ValueError, "parse"),
        (
            lambda d: data.load("fashion_mnist", data_dir=d / "x"),
            FileNotFoundError,
            "x'",
        ),
    ],
)
def test_fashion_mnist_bad_arguments(tmp_path, call, error, message):
    write_fashion_mnist(tmp_path)
    with pytest.raises(error, match=message):
        call(tmp_path)


@pytest.mark.skipif(
    not os.path.isdir(FASHION_MNIST_DIR), reason="Debian dataset-fashion-mnist absent"
)
def test_real_fashion_mnist_files_match_tfds_splits():
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = data.load_fashion_mnist(split=split)
        assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
        assert labels.dtype == np.int64
        # tfds' fashion_mnist is balanced: 6000 / 1000 examples of each of 10 classes.
        np.testing.assert_array_equal(np.bincount(labels), np.full(10, n // 10))
        assert 0 < images.mean() < 255
    described = data.info("fashion_mnist", "test")
    assert described == data.DatasetInfo(
        num_examples=10_000,
        num_classes=10,
        image_shape=(28, 28, 1),
        labelled=True,
        class_names=tuple(tfds.builder("fashion_mnist").info.features["label"].names),
    )
    loaded = data.load("fashion_mnist", "test[:3]")
    assert [int(label) for _, label in loaded] == labels[:3].tolist()


def test_load_fashion_mnist_from_data_dir_as_dataset(tmp_path):
    arrays = write_fashion_mnist(tmp_path)
    dataset = data.load("fashion_mnist", "train", data_dir=tmp_path)
    assert dataset.element_spec == (
        tf.TensorSpec((28, 28, 1), tf.uint8),
        tf.TensorSpec((), tf.int64),
    )
    images = np.stack(images_of(dataset))
    np.testing.assert_array_equal(images[..., 0], arrays["train"][0])
    resized = data.load("fashion_mnist", "train", data_dir=tmp_path, image_size=32)
    assert resized.element_spec[0].shape == (32, 32, 1)
    first = next(iter(resized))[0].numpy()
    np.testing.assert_array_equal(
        first, pipelines._resize_image(tf.constant(images[0]), (32, 32)).numpy()
    )
    only_images = data.load("fashion_mnist", "test", data_dir=tmp_path, labels=False)
    assert only_images.element_spec == tf.TensorSpec((28, 28, 1), tf.uint8)
