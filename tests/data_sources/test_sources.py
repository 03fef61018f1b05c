"""keras_simclr.data.sources: names dispatch to their source; arguments are checked
once; DatasetInfo serialises."""

import json
import keras
import pytest
import tensorflow_datasets as tfds

from keras_simclr import data
from keras_simclr.data import idx

from .image_files import images_of


def test_fashion_mnist_falls_back_to_tfds_without_local_files(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with tfds.testing.mock_data(num_examples=5):
        dataset = data.load("fashion_mnist", "train")
        assert data.info("fashion_mnist").num_examples == 5
    assert len(images_of(dataset)) == 5
    assert dataset.element_spec[0].shape == (28, 28, 1)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"name": "cifar11"}, ValueError, r"Unknown data set 'cifar11'.*cifar10"),
        ({"name": ""}, ValueError, r"`name` must be"),
        (
            {"name": "cifar10", "data_dir": "/nonexistent"},
            FileNotFoundError,
            r"data_dir",
        ),
        ({"name": "cifar10", "image_size": 0}, ValueError, r"image_size=0"),
        (
            {"name": "cifar10", "image_size": (3, 2, 1)},
            ValueError,
            r"\(height, width\)",
        ),
        ({"name": "cifar10", "labels": "yes"}, ValueError, r"labels='yes'"),
        ({"name": "folder:/nonexistent"}, FileNotFoundError, r"does not exist"),
        ({"name": "folder:"}, ValueError, r"path after 'folder:'"),
    ],
)
def test_load_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        data.load(**kwargs)


def test_dataset_info_round_trips_as_json():
    described = data.DatasetInfo(120, 3, (32, 32, 3), True, ("a", "b", "c"))
    record = json.loads(json.dumps(described.to_dict()))
    assert data.DatasetInfo.from_dict(record) == described
    unlabelled = data.DatasetInfo(None, None, (None, None, 3), False)
    assert data.DatasetInfo.from_dict(unlabelled.to_dict()) == unlabelled


def test_dataset_info_saved_by_keras_saving_still_loads():
    # As keras.saving serialised it while DatasetInfo was a registered Keras object
    # (here from when keras_simclr/data.py was one module): a plain record now.
    saved = {
        "module": "keras_simclr.data",
        "class_name": "DatasetInfo",
        "config": {
            "num_examples": 10,
            "num_classes": 2,
            "image_shape": [8, 8, 1],
            "labelled": True,
            "class_names": ["a", "b"],
        },
        "registered_name": "keras_simclr>DatasetInfo",
    }
    assert keras.saving.get_registered_object(saved["registered_name"]) is None
    assert data.DatasetInfo.from_dict(saved) == data.DatasetInfo(
        10, 2, (8, 8, 1), True, ("a", "b")
    )
