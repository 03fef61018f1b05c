"""Data sets of TensorFlow Datasets, by name.

The paper pretrains on ImageNet and CIFAR-10 and evaluates on those and on the
transfer data sets of Section 6 (Appendix B.8); any of them that TensorFlow Datasets
knows loads by name (`tfds.load`, which downloads and prepares it on first use).
"""

import difflib

import tensorflow as tf
import tensorflow_datasets as tfds

from keras_simclr.data.pipelines import _resize_dataset
from keras_simclr.data.splits import _split_names

# Splits whose images have no class (STL-10's).
_UNLABELLED_SPLITS = ("unlabelled", "unlabeled")


def _tfds_builder(name, data_dir):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name.split(":")[0].split("/")[0], known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown data set {name!r}.{hint} Expected a TensorFlow Datasets name "
            "(e.g. 'cifar10', 'cifar100', 'stl10', 'imagenet2012', 'fashion_mnist'), "
            "'tfds:NAME' or 'folder:/path/to/images'."
        ) from None


def _tfds_keys(builder, split, labels):
    features = builder.info.features
    supervised = builder.info.supervised_keys or ()
    image_key = supervised[0] if supervised else "image"
    if image_key not in features:
        raise ValueError(
            f"The tfds data set {builder.name!r} has no image feature (features: "
            f"{', '.join(features)}); only image data sets can be loaded."
        )
    label_key = supervised[1] if len(supervised) > 1 else None
    if label_key is None and "label" in features:
        label_key = "label"
    # tfds gives STL-10's unlabelled images the label -1; they have no class.
    if any(part in _UNLABELLED_SPLITS for part in _split_names(split)):
        label_key = None
    if labels is True and label_key is None:
        raise ValueError(
            f"labels=True, but split {split!r} of {builder.name!r} has no labels. "
            "Pass labels='auto' or choose a labelled split."
        )
    return image_key, None if labels is False else label_key


def _tfds_num_examples(builder, split):
    if not builder.info.splits:
        # Not prepared yet: prepare it now, as `load()` would.
        builder.download_and_prepare()
    try:
        return int(builder.info.splits[split].num_examples)
    except KeyError:
        # Still no split metadata: `tfds.testing.mock_data`, whose datasets know
        # their cardinality.
        cardinality = int(builder.as_dataset(split=split).cardinality())
        return cardinality if cardinality >= 0 else None


def _load_tfds(name, split, data_dir, image_size, shuffle_files, seed, labels):
    builder = _tfds_builder(name, data_dir)
    image_key, label_key = _tfds_keys(builder, split, labels)
    dataset = tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        shuffle_files=shuffle_files,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )

    def select(example):
        if label_key is None:
            return example[image_key]
        return example[image_key], tf.cast(example[label_key], tf.int64)

    dataset = dataset.map(select, num_parallel_calls=tf.data.AUTOTUNE)
    return _resize_dataset(dataset, image_size)


def _describe_tfds(name, split, data_dir, image_size, labels):
    """The `DatasetInfo` fields of a tfds split, as `_load_tfds` yields it."""
    builder = _tfds_builder(name, data_dir)
    image_key, label_key = _tfds_keys(builder, split, labels)
    shape = tuple(builder.info.features[image_key].shape)
    if image_size is not None:
        shape = (*image_size, shape[-1])
    num_classes = class_names = None
    if label_key is not None:
        feature = builder.info.features[label_key]
        num_classes = getattr(feature, "num_classes", None)
        names = getattr(feature, "names", None)
        class_names = tuple(names) if names else None
    return dict(
        num_examples=_tfds_num_examples(builder, split),
        num_classes=num_classes,
        image_shape=shape,
        labelled=label_key is not None,
        class_names=class_names,
    )
