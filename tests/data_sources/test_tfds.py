"""keras_simclr.data.tfds: TensorFlow Datasets by name, mocked (no network here)."""

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_simclr import data

from .image_files import images_of


@pytest.mark.parametrize(
    "name, split, image_shape, num_classes",
    [
        ("cifar10", "train", (32, 32, 3), 10),
        ("cifar100", "test", (32, 32, 3), 100),
        ("stl10", "train", (96, 96, 3), 10),
        ("stl10", "unlabelled", (96, 96, 3), None),
        ("tfds:fashion_mnist", "test", (28, 28, 1), 10),
    ],
)
def test_tfds_datasets_by_name(tmp_path, name, split, image_shape, num_classes):
    with tfds.testing.mock_data(num_examples=7):
        dataset = data.load(name, split, data_dir=tmp_path)
        described = data.info(name, split, data_dir=tmp_path)
    image_spec = tf.TensorSpec(image_shape, tf.uint8)
    if num_classes is None:
        assert dataset.element_spec == image_spec
    else:
        assert dataset.element_spec == (image_spec, tf.TensorSpec((), tf.int64))
        labels = [int(label) for _, label in dataset]
        assert all(0 <= label < num_classes for label in labels)
    assert len(images_of(dataset)) == 7
    assert described.num_examples == 7  # the mocked split's size, not tfds' real one
    assert described.num_classes == num_classes
    assert described.labelled == (num_classes is not None)
    assert described.image_shape == image_shape


def test_tfds_variable_size_images_are_resized_for_batching(tmp_path):
    with tfds.testing.mock_data(num_examples=4):
        raw = data.load("imagenet2012", "validation", data_dir=tmp_path)
        resized = data.load("imagenet2012", "validation", tmp_path, image_size=24)
        assert data.info(
            "imagenet2012", "validation", tmp_path, image_size=24
        ).image_shape == (
            24,
            24,
            3,
        )
    with pytest.raises(ValueError, match="different sizes.*image_size="):
        data.pretraining_dataset(raw, 2)
    batch = next(iter(data.pretraining_dataset(resized, 2, repeat=False)))
    assert batch[0].shape == (2, 24, 24, 3) and batch[0].dtype == tf.uint8


def test_tfds_labels_argument(tmp_path):
    with tfds.testing.mock_data(num_examples=3):
        dropped = data.load("cifar10", "train", tmp_path, labels=False)
        with pytest.raises(ValueError, match="labels=True.*has no labels"):
            data.load("stl10", "unlabelled", tmp_path, labels=True)
    assert dropped.element_spec == tf.TensorSpec((32, 32, 3), tf.uint8)
