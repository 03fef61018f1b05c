"""Input pipelines: data sets by name, two-view pretraining batches, evaluation batches.

SimCLR (Chen et al., 2020, Section 2.1 and Appendix B.9) draws a minibatch of N images,
augments each twice, and contrasts the resulting 2N views. This module supplies the
images (`load`, from TensorFlow Datasets, local Fashion-MNIST IDX files or a folder of
images) and the batches (`pretraining_dataset`, `evaluation_dataset`,
`distributed_pretraining_dataset`). Images stay `uint8` through shuffling and caching;
conversion to floats happens in the augmentation or evaluation preprocessing.

This is one of the TensorFlow edges of the library (`tf.data`, `tf.distribute`).
"""

import dataclasses
import difflib
import gzip
import hashlib
import logging
import os
import re
import types
import warnings
import zlib

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_simclr import augment as augmentation

_LOGGER = logging.getLogger(__name__)

# Where the Debian package `dataset-fashion-mnist` installs the four IDX files.
_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FASHION_MNIST_HELP = (
    "Install the Debian package dataset-fashion-mnist "
    "(apt-get install dataset-fashion-mnist), download the four .gz files from "
    "https://github.com/zalandoresearch/fashion-mnist into a directory and pass it as "
    "data_dir, or use the dataset name 'tfds:fashion_mnist'."
)
_IDX_IMAGES_MAGIC = 2051  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # unsigned bytes, 1 dimension

# The formats `tf.io.decode_image` reads (GIF: first frame only).
_IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_UNLABELLED_SPLITS = ("unlabelled", "unlabeled")
_MAX_NAMED_IN_WARNING = 20

# Decode checks of folder images, keyed by (path, size, mtime_ns), so that `info()`
# and the `load()` calls of one run decode every file once. Good files are kept as
# hashes (about 60 bytes each, 80 MB for ImageNet's 1.28M), bad ones with the reason.
_GOOD_FILES = set()
_BAD_FILES = {}


@keras.saving.register_keras_serializable(package="keras_simclr")
@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the input pipelines and the command line need to know about a data set.

    SimCLR's schedules are set in epochs (Section B.9: warm-up for 10 epochs, then
    cosine decay), so the number of examples fixes the number of steps, and the linear
    evaluation (Section 4) needs the number of classes.

    Args:
        num_examples: examples in the split (for a folder: the readable images),
            or `None` when the source does not say.
        num_classes: number of classes, or `None` for unlabelled data.
        image_shape: `(height, width, channels)` of the images `load()` yields;
            `None` for a dimension that varies between images.
        labelled: whether `load()` yields `(image, label)` pairs.
        class_names: the class names in label order, when the source has them.

    Example:

    >>> info = keras_simclr.data.info("fashion_mnist", "test")
    >>> info.num_examples, info.num_classes, info.image_shape
    (10000, 10, (28, 28, 1))
    """

    num_examples: int | None
    num_classes: int | None
    image_shape: tuple
    labelled: bool
    class_names: tuple | None = None

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["image_shape"] = tuple(config["image_shape"])
        if config.get("class_names") is not None:
            config["class_names"] = tuple(config["class_names"])
        return cls(**config)


def load(
    name,
    split="train",
    data_dir=None,
    image_size=None,
    shuffle_files=False,
    seed=None,
    *,
    labels="auto",
):
    """Loads a split of a data set as unbatched `uint8` images (and labels).

    The paper pretrains on ImageNet and CIFAR-10 and evaluates on those and on the
    transfer data sets of Section 6 (Appendix B.8); any of them that TensorFlow Datasets
    knows loads by name. Fashion-MNIST also loads offline from its four IDX files, and
    a folder of images loads without any preparation.

    Names:
        - A TensorFlow Datasets name (`"cifar10"`, `"cifar100"`, `"stl10"`,
          `"imagenet2012"`, `"cifar10:3.0.2"`, ...): `tfds.load(name, split=split,
          data_dir=data_dir)`, which downloads and prepares the data on first use.
          The `"unlabelled"` split (STL-10) yields images alone.
        - `"fashion_mnist"`: the gzipped (or plain) IDX files from `data_dir`, else
          from `/usr/share/datasets/fashion-mnist` (Debian package
          `dataset-fashion-mnist`), else tfds' `fashion_mnist`. Same splits, shapes
          and labels as tfds. `"tfds:NAME"` always goes through tfds.
        - `"folder:/path"`: every `.jpg`, `.jpeg`, `.png`, `.bmp` and `.gif` file
          below `/path` (nested at any depth; hidden files are ignored), decoded to
          RGB. If `/path/<split>` is a directory (say `train/` and `test/`), the
          split reads that directory; otherwise `"train"` is the whole folder.
          Labels come from the first-level sub-folder of the split's directory
          (class names in sorted order, the union over all split directories so that
          `train` and `test` agree): with `labels=True` always, with `labels="auto"`
          when no image lies directly in that directory and at least two sub-folders
          hold images. Files that cannot be read or decoded are skipped with a warning
          that names them and gives their count; finding them costs one decode of every
          file when the folder is first loaded (cached for the process).

    Splits accept the tfds slicing syntax for every source (`"train[:90%]"`,
    `"train[:1000]+test"`). A folder's files are ordered by a hash of their relative
    path before slicing, so `train[:90%]` and `train[90%:]` are disjoint subsets that
    are class-balanced in expectation.

    Args:
        name: the data set, as described above.
        split: the split, with optional tfds slicing.
        data_dir: where the data lives: tfds' data directory, or the directory of
            the Fashion-MNIST IDX files. Must exist when given.
        image_size: `None` keeps the stored size: a folder's images (and
            ImageNet's) then keep their own sizes, at full resolution, and
            `pretraining_dataset` / `evaluation_dataset` crop each one before
            batching, as the reference implementation does. An int or
            `(height, width)` centre-crops the largest window with the target aspect
            ratio and resizes it (bilinear, antialiased) to that size, which equals
            resizing the shorter side and centre-cropping: every image gets one
            size, and random crops later come from that smaller image.
        shuffle_files: shuffle the order of the files each epoch (tfds shards, folder
            images); in-memory sources (local Fashion-MNIST) keep their order.
        seed: seed of the file shuffling.
        labels: `"auto"`, `True` or `False`. `False` drops labels; `True` requires
            them (and forces the sub-folder rule for folders); `"auto"` keeps what the
            source has.

    Returns:
        An unbatched `tf.data.Dataset` of `(image, label)` (`uint8 (H, W, C)`,
        `int64 ()`) for labelled data, or of images alone for unlabelled data.
        Images of different sizes have the element shape `(None, None, C)`.

    Example:

    >>> train = keras_simclr.data.load("fashion_mnist", "train")
    >>> pets = keras_simclr.data.load("folder:/data/pets")  # full resolution
    >>> thumbnails = keras_simclr.data.load("folder:/data/pets", image_size=96)
    """
    kind, target = _parse_name(name)
    image_size = _check_image_size(image_size)
    labels = _check_labels(labels)
    _check_data_dir(data_dir)
    if kind == "folder":
        return _load_folder(target, split, image_size, labels, shuffle_files, seed)
    if kind == "fashion_mnist":
        directory = _fashion_mnist_dir(data_dir)
        if directory is not None:
            images, class_ids = load_fashion_mnist(directory, split)
            images = _resize_array(images, image_size)
            if labels is False:
                dataset = tf.data.Dataset.from_tensor_slices(images)
            else:
                dataset = tf.data.Dataset.from_tensor_slices((images, class_ids))
            return dataset
        target = "fashion_mnist"
    return _load_tfds(target, split, data_dir, image_size, shuffle_files, seed, labels)


def info(name, split="train", data_dir=None, *, image_size=None, labels="auto"):
    """Describes the split that `load()` with the same arguments yields.

    Used to turn the paper's epoch-based schedules (Appendix B.9) into steps and to
    size the linear classifier of the evaluation protocol (Section 4).

    Args:
        name: the data set, as for `load()`.
        split: the split, with optional tfds slicing.
        data_dir: as for `load()`.
        image_size: as for `load()`; sets `image_shape`.
        labels: as for `load()`.

    Returns:
        A `DatasetInfo`. For a folder, `num_examples` counts the readable images. A
        tfds data set that is not prepared yet is downloaded and prepared first, as
        `load()` would.

    Example:

    >>> keras_simclr.data.info("cifar10", "train[:10%]").num_examples
    5000
    """
    kind, target = _parse_name(name)
    image_size = _check_image_size(image_size)
    labels = _check_labels(labels)
    _check_data_dir(data_dir)
    if kind == "folder":
        listing = _scan_folder(target, split, labels)
        channels = 3
        shape = (*image_size, channels) if image_size else (None, None, channels)
        labelled = listing.class_names is not None
        return DatasetInfo(
            num_examples=len(listing.files),
            num_classes=len(listing.class_names) if labelled else None,
            image_shape=shape,
            labelled=labelled,
            class_names=listing.class_names,
        )
    if kind == "fashion_mnist":
        directory = _fashion_mnist_dir(data_dir)
        if directory is not None:
            counts = {
                base: _idx_header(
                    _find_idx_file(directory, _FASHION_MNIST_FILES[base][1]),
                    _IDX_LABELS_MAGIC,
                )[0]
                for base in _fashion_mnist_splits(split)
            }
            instructions = _resolve_split(split, counts)
            labelled = labels is not False
            return DatasetInfo(
                num_examples=sum(_slice_length(i, counts) for i in instructions),
                num_classes=len(_FASHION_MNIST_CLASSES) if labelled else None,
                image_shape=(*(image_size or (28, 28)), 1),
                labelled=labelled,
                class_names=_FASHION_MNIST_CLASSES if labelled else None,
            )
        target = "fashion_mnist"
    builder = _tfds_builder(target, data_dir)
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
    return DatasetInfo(
        num_examples=_tfds_num_examples(builder, split),
        num_classes=num_classes,
        image_shape=shape,
        labelled=label_key is not None,
        class_names=class_names,
    )


def load_fashion_mnist(data_dir=None, split="train"):
    """Reads Fashion-MNIST from its IDX files into NumPy arrays.

    Fashion-MNIST (Xiao et al., 2017) is not in the paper; it is the data set this
    library pretrains on offline in minutes, as a stand-in for the CIFAR-10 runs of
    Appendix B.9. The result matches tfds' `fashion_mnist`: `train` has 60,000 images
    and `test` 10,000, each `28x28x1`, labels 0-9.

    The headers are checked: magic numbers (2051 for images, 2049 for labels), image
    dimensions, the number of bytes against the counts they announce, equal image and
    label counts, and labels below 10.

    Args:
        data_dir: the directory of `train-images-idx3-ubyte.gz`,
            `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz` and
            `t10k-labels-idx1-ubyte.gz` (or the same names without `.gz`). Defaults to
            `/usr/share/datasets/fashion-mnist`. Only the files of the requested split
            need to be there.
        split: `"train"`, `"test"`, with optional tfds slicing (`"train[:10%]"`).

    Returns:
        `(images, labels)`: `uint8` of shape `(n, 28, 28, 1)` and `int64` of shape
        `(n,)`.

    Example:

    >>> images, labels = keras_simclr.data.load_fashion_mnist(split="test")
    >>> images.shape, labels[:3]
    ((10000, 28, 28, 1), array([9, 2, 1]))
    """
    directory = _FASHION_MNIST_DIR if data_dir is None else os.fspath(data_dir)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"The Fashion-MNIST directory does not exist. Received: "
            f"data_dir={directory!r}. {_FASHION_MNIST_HELP}"
        )
    arrays = {
        base: _read_fashion_mnist(directory, base)
        for base in _fashion_mnist_splits(split)
    }
    counts = {base: len(class_ids) for base, (_, class_ids) in arrays.items()}
    parts = [
        tuple(array[i.from_ : i.to] for array in arrays[i.splitname])
        for i in _resolve_split(split, counts)
    ]
    images = np.concatenate([images for images, _ in parts])
    class_ids = np.concatenate([class_ids for _, class_ids in parts])
    return images, class_ids


def pretraining_dataset(
    source,
    batch_size,
    augment=None,
    shuffle_buffer=10_000,
    cache=False,
    repeat=True,
    seed=None,
    input_context=None,
    labels=True,
):
    """Batches images for contrastive pretraining, optionally as two augmented views.

    SimCLR (Algorithm 1) samples a minibatch of N images and draws two augmentations
    of each; the pipeline shuffles, caches if asked, repeats, batches with
    `drop_remainder=True` (every step contrasts exactly the global batch) and then
    applies `augment` twice to each batch, so that a batch-level augmentation layer
    draws its parameters per example and independently for the two views. Without
    `augment`, the images stay `uint8` and the model augments them on the accelerator.

    Images of different sizes (a folder or ImageNet loaded without `image_size`) are
    cropped at their full resolution, as the reference implementation crops the
    decoded image (`crop_and_resize` in its `data_util.py`): the two crops of each
    image are drawn on the original and resized once, before batching, and the rest
    of `keras_simclr.augment.SimCLRAugment` (colour jitter, colour drop, blur) then
    runs on batches. Another `augment` is called on each image alone (as a batch of
    one) and must return one size. The shuffle buffer then holds full-resolution
    images.

    With a seed, the order and the views are reproducible: shuffling uses the seed
    and the augmentation runs one batch at a time (one image at a time for the
    random crops of images of different sizes), because concurrent calls would
    consume the augmentation layer's random state in a varying order (each call
    is still vectorised over the batch; crops are cut and resized concurrently).
    Without a seed, batches are augmented concurrently.

    Args:
        source: a `tf.data.Dataset` of images or `(image, label)` pairs (what
            `load()` returns; dicts with `"image"` and `"label"` keys work too), a
            NumPy array of images `(n, H, W, C)` or `(n, H, W)`, or a tuple
            `(images, labels)`. Images `uint8` or float in [0, 1], of one shape or,
            with `augment`, of different sizes (element shape `(None, None, C)`).
        batch_size: the global batch size. With `input_context` the dataset yields
            per-replica batches of `batch_size // num_replicas_in_sync`.
        augment: a callable (e.g. `keras_simclr.augment.SimCLRAugment`) mapping a
            batch of images as the source holds them to one float32 view of one
            size; `None` leaves augmentation to the model.
        shuffle_buffer: size of the shuffle buffer; 0 disables shuffling.
        cache: `True` caches the source in memory, a string caches it to that file;
            done before shuffling so that each epoch is reshuffled.
        repeat: repeat the data indefinitely (set the length with `steps_per_epoch`).
        seed: seed of the shuffling, which also makes the augmentation sequential.
        input_context: a `tf.distribute.InputContext`, as passed by
            `strategy.distribute_datasets_from_function`: the source is sharded by
            input pipeline and batched per replica.
        labels: keep the labels of a labelled source (for the online linear probe).

    Returns:
        A `tf.data.Dataset` of `((view_1, view_2), labels)` or `((view_1, view_2),)`
        with `augment`, of `(images, labels)` or `(images,)` without.

    Example:

    >>> train = keras_simclr.data.load("fashion_mnist")
    >>> augment = keras_simclr.augment.SimCLRAugment(32, preset="grayscale", seed=1)
    >>> ds = keras_simclr.data.pretraining_dataset(train, 256, augment=augment, seed=1)
    """
    _check_positive_int("batch_size", batch_size)
    _check_non_negative_int("shuffle_buffer", shuffle_buffer)
    if augment is not None and not callable(augment):
        raise TypeError(
            "`augment` must be a callable mapping a batch of images to one view, e.g. "
            f"keras_simclr.augment.SimCLRAugment(...). Received: augment={augment!r}"
        )
    if not isinstance(cache, (bool, str, os.PathLike)):
        raise TypeError(
            "`cache` must be True/False or a file name. Received: " f"cache={cache!r}"
        )
    dataset, labelled, sizes_differ = _as_dataset(source, "pretraining_dataset")
    if sizes_differ and augment is None:
        raise ValueError(
            "`pretraining_dataset` received images of different sizes (element "
            f"shape {_image_spec(dataset).shape}), which cannot be batched as they "
            "are. Pass augment=keras_simclr.augment.SimCLRAugment(...), which crops "
            "each image at full resolution before batching, or give the images one "
            "size with keras_simclr.data.load(..., image_size=...)."
        )
    per_replica_batch = batch_size
    if input_context is not None:
        replicas = input_context.num_replicas_in_sync
        if batch_size % replicas:
            raise ValueError(_divisibility_message(batch_size, replicas))
        per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
        dataset = dataset.shard(
            input_context.num_input_pipelines, input_context.input_pipeline_id
        )
    if labelled and not labels:
        dataset = dataset.map(_drop_label, num_parallel_calls=tf.data.AUTOTUNE)
        labelled = False
    if cache is not False:
        dataset = dataset.cache("" if cache is True else os.fspath(cache))
    if shuffle_buffer:
        dataset = dataset.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    if sizes_differ:
        dataset = _views_of_each_image(
            dataset, augment, per_replica_batch, sequential=seed is not None
        )
    elif augment is None:
        dataset = dataset.batch(per_replica_batch, drop_remainder=True)
        dataset = dataset.map(
            _as_tuple if labelled else _as_single, num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        dataset = dataset.batch(per_replica_batch, drop_remainder=True)

        def two_views(images, *label):
            return ((augment(images), augment(images)), *label)

        dataset = dataset.map(
            two_views, num_parallel_calls=None if seed is not None else tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _views_of_each_image(dataset, augment, batch_size, sequential):
    """Batches of two views of images of different sizes, cropped one by one.

    `SimCLRAugment` draws the two crops of an image (one image at a time when
    `sequential`, so that its random streams are consumed in order), cuts and
    resizes them concurrently, and augments the rest on batches. Another `augment`
    makes each view of an image alone.
    """
    draws = None if sequential else tf.data.AUTOTUNE
    if isinstance(augment, augmentation.SimCLRAugment):
        # Graph code already, as a layer call is: AutoGraph need not convert it.
        @tf.autograph.experimental.do_not_convert
        def draw(image, *label):
            return (image, augment._draw_crops(image, 2), *label)

        @tf.autograph.experimental.do_not_convert
        def crop(image, crops, *label):
            return (augment._crop_views(image, crops), *label)

        @tf.autograph.experimental.do_not_convert
        def finish(crops, *label):
            return (tuple(augment._augment_crops(views) for views in crops), *label)

        dataset = dataset.map(draw, num_parallel_calls=draws)
        dataset = dataset.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(batch_size, drop_remainder=True)
        return dataset.map(finish, num_parallel_calls=draws)

    def views(image, *label):
        return (tuple(augment(image[None])[0] for _ in range(2)), *label)

    dataset = dataset.map(views, num_parallel_calls=draws)
    view_spec = dataset.element_spec[0][0]
    if not view_spec.shape.is_fully_defined():
        raise ValueError(
            "`augment` must map each of the images of different sizes to a view of "
            "one size, so that views can be batched. Received views of shape "
            f"{view_spec.shape}. Use a layer that crops and resizes, e.g. "
            "keras_simclr.augment.SimCLRAugment(224)."
        )
    return dataset.batch(batch_size, drop_remainder=True)


def evaluation_dataset(source, batch_size, preprocess=None):
    """Batches labelled images for evaluation, in order and keeping every example.

    The linear evaluation of Section 4 (and Appendix B.5) reads the test images once,
    with the evaluation preprocessing (a central crop, no colour augmentation) and no
    shuffling; the last batch may be smaller, so that every example is scored.
    Images of different sizes are preprocessed one by one before batching, so that a
    central crop is taken of the original image and resized once, as the reference
    implementation does (`center_crop` in its `data_util.py`).

    Args:
        source: a labelled source, as for `pretraining_dataset()`.
        batch_size: the batch size.
        preprocess: a callable (e.g. `keras_simclr.augment.CenterCropResize`) mapping
            a batch of images as the source holds them to float32 in [0, 1]. `None`
            converts `uint8` images to float32 in [0, 1]. Required for images of
            different sizes, to each of which it is applied alone (as a batch of
            one); it must then return one size.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`, images float32.

    Example:

    >>> test = keras_simclr.data.load("fashion_mnist", "test")
    >>> ds = keras_simclr.data.evaluation_dataset(test, 512)
    >>> photos = keras_simclr.data.load("folder:/data/pets", "test")
    >>> center = keras_simclr.augment.CenterCropResize(224, 224)
    >>> ds = keras_simclr.data.evaluation_dataset(photos, 256, preprocess=center)
    """
    _check_positive_int("batch_size", batch_size)
    if preprocess is not None and not callable(preprocess):
        raise TypeError(
            "`preprocess` must be a callable mapping a batch of images to float32, "
            f"e.g. keras_simclr.augment.CenterCropResize(...). Received: "
            f"preprocess={preprocess!r}"
        )
    dataset, labelled, sizes_differ = _as_dataset(source, "evaluation_dataset")
    if not labelled:
        raise ValueError(
            "`evaluation_dataset` needs labels, but the source yields images only. "
            "Load a labelled split (e.g. 'train' or 'test' rather than 'unlabelled'), "
            "or pass (images, labels)."
        )
    transform = _to_unit_float if preprocess is None else preprocess

    def prepare(images, class_ids):
        return tf.cast(transform(images), tf.float32), class_ids

    if sizes_differ:
        if preprocess is None:
            raise ValueError(
                "`evaluation_dataset` received images of different sizes (element "
                f"shape {_image_spec(dataset).shape}), which cannot be batched as "
                "they are. Pass preprocess=keras_simclr.augment.CenterCropResize("
                "224, 224), which crops each image at full resolution before "
                "batching, or give the images one size with "
                "keras_simclr.data.load(..., image_size=...)."
            )

        def prepare_one(image, class_id):
            return tf.cast(transform(image[None])[0], tf.float32), class_id

        dataset = dataset.map(prepare_one, num_parallel_calls=tf.data.AUTOTUNE)
        if not _image_spec(dataset).shape.is_fully_defined():
            raise ValueError(
                "`preprocess` must map each of the images of different sizes to one "
                "size, so that they can be batched. Received outputs of shape "
                f"{_image_spec(dataset).shape}. Use a layer that crops and resizes, "
                "e.g. keras_simclr.augment.CenterCropResize(224, 224)."
            )
        dataset = dataset.batch(batch_size)
    else:
        dataset = dataset.batch(batch_size).map(
            prepare, num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def distributed_pretraining_dataset(strategy, source_fn, batch_size, **kwargs):
    """Builds `pretraining_dataset()` on every input worker of a distribution strategy.

    The paper trains with a global batch split over many accelerators (Section 2.2,
    batch 4096 on 32 to 128 TPU cores); each replica receives `batch_size / replicas`
    images, and each input worker reads its own shard, through
    `strategy.distribute_datasets_from_function`.

    Args:
        strategy: a `tf.distribute.Strategy`.
        source_fn: a callable returning the source (called once per input worker, so
            each loads its data locally), or the source itself.
        batch_size: the global batch size; must be divisible by the number of replicas.
        **kwargs: the other arguments of `pretraining_dataset()` (`augment`,
            `shuffle_buffer`, `cache`, `repeat`, `seed`, `labels`).

    Returns:
        A `tf.distribute.DistributedDataset` for `model.fit()`.

    Example:

    >>> strategy = tf.distribute.MirroredStrategy()
    >>> ds = keras_simclr.data.distributed_pretraining_dataset(
    ...     strategy, lambda: keras_simclr.data.load("cifar10"), 512)
    """
    _check_positive_int("batch_size", batch_size)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(_divisibility_message(batch_size, replicas))
    if "input_context" in kwargs:
        raise TypeError(
            "`input_context` is set by the strategy; do not pass it to "
            "`distributed_pretraining_dataset`."
        )

    def dataset_fn(input_context):
        source = source_fn() if callable(source_fn) else source_fn
        return pretraining_dataset(
            source, batch_size, input_context=input_context, **kwargs
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


# Names and arguments.


def _parse_name(name):
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            "`name` must be a data set name such as 'cifar10', 'fashion_mnist', "
            f"'tfds:NAME' or 'folder:/path'. Received: name={name!r}"
        )
    name = name.strip()
    if name.startswith("folder:"):
        path = os.path.expanduser(name[len("folder:") :])
        if not path:
            raise ValueError(
                "A folder data set needs a path after 'folder:'. Received: "
                f"name={name!r}. Pass e.g. 'folder:/data/images'."
            )
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"The image folder does not exist. Received: name={name!r}. Pass the "
                "path of an existing directory of images."
            )
        return "folder", path
    if name.startswith("tfds:"):
        return "tfds", name[len("tfds:") :]
    if name == "fashion_mnist":
        return "fashion_mnist", None
    return "tfds", name


def _check_image_size(image_size):
    if image_size is None:
        return None
    pair = (image_size, image_size) if isinstance(image_size, int) else image_size
    try:
        height, width = pair
    except (TypeError, ValueError):
        height = width = None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(
                "`image_size` must be None, a positive int or a (height, width) pair "
                f"of positive ints. Received: image_size={image_size!r}"
            )
        if value < 1:
            raise ValueError(
                f"`image_size` must be positive. Received: image_size={image_size!r}"
            )
    return int(height), int(width)


def _check_labels(labels):
    if not (labels is True or labels is False or labels == "auto"):
        raise ValueError(
            "`labels` must be 'auto', True or False. Received: " f"labels={labels!r}"
        )
    return labels


def _check_data_dir(data_dir):
    if data_dir is not None and not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"The data directory does not exist. Received: data_dir={data_dir!r}. "
            "Create it (tfds downloads into it) or pass the directory holding the "
            "data."
        )


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")


def _check_non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={value!r}")


def _divisibility_message(batch_size, replicas):
    lower = batch_size // replicas * replicas
    return (
        "`batch_size` (the global batch) must be divisible by the number of replicas, "
        f"so that every replica gets the same number of images. Received: "
        f"batch_size={batch_size} with {replicas} replicas. Use a multiple of "
        f"{replicas}, e.g. {max(lower, replicas)} or {lower + replicas}."
    )


def _parse_split(split):
    if not isinstance(split, str) or not split.strip():
        raise ValueError(
            f"`split` must be a split name such as 'train'. Received: split={split!r}"
        )
    try:
        return tfds.core.ReadInstruction.from_spec(split)
    except (ValueError, AssertionError) as error:
        raise ValueError(
            f"Could not parse the split. Received: split={split!r}. Use a name with "
            f"optional tfds slicing, e.g. 'train' or 'train[:90%]'. ({error})"
        ) from None


def _resolve_split(split, counts):
    """Resolves a tfds split spec (`"train[:10%]+test"`) against `{name: count}`.

    Returns tfds' absolute instructions: `splitname`, `from_`, `to` (None for open
    ends), so the slicing rules (rounding of percentages) are exactly tfds'.
    """
    instruction = _parse_split(split)
    infos = {base: types.SimpleNamespace(num_examples=n) for base, n in counts.items()}
    try:
        return instruction.to_absolute(infos)
    except ValueError as error:
        raise ValueError(
            f"Invalid split {split!r}: {error} Available splits: "
            f"{', '.join(sorted(counts))}."
        ) from None


def _split_names(split):
    return [part.split("[")[0].strip() for part in split.split("+")]


def _slice_length(instruction, counts):
    return len(range(counts[instruction.splitname])[instruction.from_ : instruction.to])


def _image_size_matches(shape, image_size):
    return image_size is not None and tuple(shape[:2]) == tuple(image_size)


# Resizing.


def _resize_image(image, image_size):
    """Centre-crops the largest window of the target aspect ratio, then resizes.

    Cropping first is the same as resizing the shorter side and centre-cropping, but
    never resizes pixels that are then thrown away. Takes `(H, W, C)` or a batch
    `(N, H, W, C)` of images of one size.
    """
    target_height, target_width = image_size
    shape = tf.shape(image)
    height = tf.cast(shape[-3], tf.float64)
    width = tf.cast(shape[-2], tf.float64)
    target_ratio = target_height / target_width
    crop_height = tf.minimum(height, tf.round(width * target_ratio))
    crop_width = tf.minimum(width, tf.round(height / target_ratio))
    crop_height = tf.cast(tf.maximum(crop_height, 1.0), tf.int32)
    crop_width = tf.cast(tf.maximum(crop_width, 1.0), tf.int32)
    top = (shape[-3] - crop_height) // 2
    left = (shape[-2] - crop_width) // 2
    crop = image[..., top : top + crop_height, left : left + crop_width, :]
    resized = tf.image.resize(crop, image_size, method="bilinear", antialias=True)
    resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
    return tf.cast(resized, tf.uint8)


def _resize_array(images, image_size, chunk=8192):
    """Resizes an in-memory array once, instead of once per example and epoch."""
    if image_size is None or images.shape[1:3] == tuple(image_size):
        return images
    return np.concatenate(
        [
            _resize_image(tf.constant(images[i : i + chunk]), image_size).numpy()
            for i in range(0, len(images), chunk)
        ]
    )


def _resize_dataset(dataset, image_size):
    image_spec = dataset.element_spec
    if isinstance(image_spec, tuple):
        image_spec = image_spec[0]
    if image_size is None or _image_size_matches(image_spec.shape, image_size):
        return dataset

    def resize(image, *label):
        image = _resize_image(image, image_size)
        return (image, *label) if label else image

    return dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE)


# TensorFlow Datasets.


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


# Fashion-MNIST IDX files.


def _fashion_mnist_dir(data_dir):
    """The directory to read IDX files from, or None to fall back to tfds."""
    if data_dir is not None:
        data_dir = os.fspath(data_dir)
        has_idx = any(
            _find_idx_file(data_dir, f, required=False)
            for files in _FASHION_MNIST_FILES.values()
            for f in files
        )
        if has_idx or not os.path.isdir(os.path.join(data_dir, "fashion_mnist")):
            return data_dir
        return None  # a tfds data directory holding a prepared fashion_mnist
    if os.path.isdir(_FASHION_MNIST_DIR):
        return _FASHION_MNIST_DIR
    return None


def _find_idx_file(directory, stem, required=True):
    for candidate in (stem + ".gz", stem):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    if required:
        raise FileNotFoundError(
            f"Fashion-MNIST file {stem}.gz (or {stem}) is missing from {directory}. "
            f"{_FASHION_MNIST_HELP}"
        )
    return None


def _fashion_mnist_splits(split):
    _parse_split(split)
    names = list(dict.fromkeys(_split_names(split)))
    unknown = [name for name in names if name not in _FASHION_MNIST_FILES]
    if unknown:
        raise ValueError(
            f"Fashion-MNIST has the splits 'train' and 'test'. Received: "
            f"split={split!r}"
        )
    return names


def _read_fashion_mnist(directory, base):
    image_file, label_file = (
        _find_idx_file(directory, stem) for stem in _FASHION_MNIST_FILES[base]
    )
    images = _read_idx(image_file, _IDX_IMAGES_MAGIC)
    class_ids = _read_idx(label_file, _IDX_LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"Fashion-MNIST images are 28x28, but the header of {image_file} "
            f"announces the shape {images.shape[1:]}. The file is not Fashion-MNIST. "
            f"{_FASHION_MNIST_HELP}"
        )
    if len(images) != len(class_ids):
        raise ValueError(
            f"{image_file} holds {len(images)} images but {label_file} holds "
            f"{len(class_ids)} labels; the two files must come from the same split. "
            f"{_FASHION_MNIST_HELP}"
        )
    if class_ids.size and class_ids.max() >= len(_FASHION_MNIST_CLASSES):
        raise ValueError(
            f"{label_file} holds the label {int(class_ids.max())}, but Fashion-MNIST "
            f"labels are 0-9. The file is corrupt. {_FASHION_MNIST_HELP}"
        )
    return images[..., None], class_ids.astype(np.int64)


def _open_idx(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _idx_header(path, expected_magic):
    """The dimensions in an IDX header, after checking its magic number."""
    kind = "images" if expected_magic == _IDX_IMAGES_MAGIC else "labels"
    try:
        with _open_idx(path) as file:
            head = file.read(4)
            magic = int.from_bytes(head, "big") if len(head) == 4 else None
            if magic != expected_magic:
                raise ValueError(
                    f"{path} has magic number {magic}, but a Fashion-MNIST {kind} "
                    f"file has {expected_magic}. The file is corrupt or is not the "
                    f"{kind} file. {_FASHION_MNIST_HELP}"
                )
            ndim = magic & 0xFF
            raw_dims = file.read(4 * ndim)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"Could not read {path}: {error}. The file is corrupt or truncated. "
            f"{_FASHION_MNIST_HELP}"
        ) from None
    if len(raw_dims) < 4 * ndim:
        raise ValueError(
            f"{path} is truncated inside its header: the file is corrupt or "
            f"truncated. {_FASHION_MNIST_HELP}"
        )
    return tuple(
        int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim)
    )


def _read_idx(path, expected_magic):
    dims = _idx_header(path, expected_magic)
    try:
        with _open_idx(path) as file:
            content = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"Could not read {path}: {error}. The file is corrupt or truncated. "
            f"{_FASHION_MNIST_HELP}"
        ) from None
    offset = 4 + 4 * len(dims)
    expected = int(np.prod(dims))
    if len(content) - offset != expected:
        raise ValueError(
            f"{path} holds {len(content) - offset} bytes of data, but its header "
            f"announces {' x '.join(map(str, dims))} = {expected}. The file is "
            f"truncated or corrupt. {_FASHION_MNIST_HELP}"
        )
    return np.frombuffer(content, np.uint8, offset=offset).reshape(dims)


# A folder of images.


def _load_folder(root, split, image_size, labels, shuffle_files, seed):
    listing = _scan_folder(root, split, labels)
    if not listing.files:
        raise ValueError(
            f"No readable image ({', '.join(_IMAGE_EXTENSIONS)}) in split {split!r} of "
            f"folder {root!r}. Put images in the folder or choose another split."
        )
    if listing.class_names is None:
        dataset = tf.data.Dataset.from_tensor_slices(listing.files)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(
            (listing.files, np.asarray(listing.class_ids, np.int64))
        )
    if shuffle_files:
        dataset = dataset.shuffle(
            len(listing.files), seed=seed, reshuffle_each_iteration=True
        )

    def decode(path, *label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
        )
        if image_size is not None:
            image = _resize_image(image, image_size)
        return (image, *label) if label else image

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    # Files were checked when the folder was scanned; one that breaks afterwards
    # (replaced, deleted) is dropped here rather than ending the epoch.
    return dataset.ignore_errors(log_warning=True)


def _scan_folder(root, split, labels):
    split_dirs = {
        entry.name: entry.path
        for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    }
    _parse_split(split)
    requested = _split_names(split)
    use_split_dirs = all(s in split_dirs for s in requested)
    if use_split_dirs:
        bases = {s: split_dirs[s] for s in dict.fromkeys(requested)}
    else:
        bases = {"train": root}
    files = {base: _image_files(directory) for base, directory in bases.items()}
    instructions = _resolve_split(
        split, {base: len(found) for base, found in files.items()}
    )
    selected = [
        (bases[i.splitname], path)
        for i in instructions
        for path in files[i.splitname][i.from_ : i.to]
    ]

    class_names = None
    if labels is not False:
        # Decided on the whole split directories, so that a slice is labelled like
        # the split it comes from.
        relative = [
            os.path.relpath(path, bases[base]).split(os.sep)
            for base, found in files.items()
            for path in found
        ]
        in_subfolder = [len(parts) > 1 for parts in relative]
        folders = {parts[0] for parts in relative if len(parts) > 1}
        detected = all(in_subfolder) and len(folders) >= 2
        if labels is True and not all(in_subfolder):
            loose = in_subfolder.count(False)
            raise ValueError(
                f"labels=True, but {loose} image(s) of split {split!r} lie directly in "
                f"{', '.join(sorted(set(bases.values())))} instead of a class "
                "sub-folder. Move them into sub-folders named after their class, or "
                "pass labels=False."
            )
        if labels is True or detected:
            if use_split_dirs:
                sibling_dirs = split_dirs.values()
            else:
                sibling_dirs = [root]
            class_names = tuple(sorted(set().union(*map(_subfolders, sibling_dirs))))

    bad = _undecodable([path for _, path in selected])
    if bad:
        _report_bad_files(root, len(selected), bad)
        selected = [(base, path) for base, path in selected if path not in bad]
    paths = [path for _, path in selected]
    class_ids = None
    if class_names is not None:
        index = {name: i for i, name in enumerate(class_names)}
        class_ids = [
            index[os.path.relpath(path, base).split(os.sep)[0]]
            for base, path in selected
        ]
    return types.SimpleNamespace(
        files=paths, class_ids=class_ids, class_names=class_names
    )


def _subfolders(directory):
    return {
        entry.name
        for entry in os.scandir(directory)
        if entry.is_dir() and not entry.name.startswith(".")
    }


def _image_files(directory):
    """Image files below `directory`, ordered by a hash of their relative path.

    The hash order makes slices (`train[:90%]`) pseudo-random subsets that are stable
    across machines and file systems, instead of cutting whole class folders off.
    """
    found = []
    visited = set()
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        # Symbolic links are followed, but a link back up the tree is walked once.
        visited.add(os.path.realpath(dirpath))
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".")
            and os.path.realpath(os.path.join(dirpath, d)) not in visited
        ]
        for filename in filenames:
            if filename.startswith("."):
                continue
            if filename.lower().endswith(_IMAGE_EXTENSIONS):
                found.append(os.path.join(dirpath, filename))

    def key(path):
        relative = os.path.relpath(path, directory).replace(os.sep, "/")
        return hashlib.md5(relative.encode("utf-8")).hexdigest(), relative

    return sorted(found, key=key)


def _file_key(path):
    try:
        stat = os.stat(path)
    except OSError:
        return (path, None, None)
    return (path, stat.st_size, stat.st_mtime_ns)


def _undecodable(paths):
    """Maps every file that cannot be read and decoded to the reason.

    One pass of `tf.data` decodes the unchecked files in parallel and drops those that
    fail; only the failures are decoded again, eagerly, to get the error message.
    """
    keys = [_file_key(path) for path in paths]
    unchecked = [
        i
        for i, key in enumerate(keys)
        if hash(key) not in _GOOD_FILES and key not in _BAD_FILES
    ]
    if unchecked:
        candidates = [paths[i] for i in unchecked]

        def check(index, path):
            image = tf.io.decode_image(
                tf.io.read_file(path), channels=3, expand_animations=False
            )
            return index, tf.reduce_min(tf.shape(image)[:2])

        dataset = tf.data.Dataset.from_tensor_slices(
            (np.arange(len(candidates), dtype=np.int64), candidates)
        )
        dataset = dataset.map(check, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.ignore_errors().batch(4096)
        decoded = set()
        for indices, sides in dataset.as_numpy_iterator():
            decoded.update(indices[sides > 0].tolist())
        for position, i in enumerate(unchecked):
            reason = None if position in decoded else _decode_error(paths[i])
            if reason is None:
                _GOOD_FILES.add(hash(keys[i]))
            else:
                _BAD_FILES[keys[i]] = reason
    return {
        path: _BAD_FILES[key] for path, key in zip(paths, keys) if key in _BAD_FILES
    }


def _decode_error(path):
    try:
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
        )
    except (tf.errors.OpError, OSError) as error:
        message = getattr(error, "message", None) or str(error)
        # Keep TensorFlow's reason, not its op and device decorations.
        message = re.sub(r"^\{\{.*?\}\}\s*", "", message.strip())
        message = re.sub(r"\s*\[Op:\w+\].*$", "", message, flags=re.DOTALL)
        return message.splitlines()[0] if message else type(error).__name__
    if min(image.shape[:2]) == 0:
        return "the image is empty"
    # It decodes now: the parallel pass met a transient read error.
    return None


def _report_bad_files(root, total, bad):
    for path, reason in bad.items():
        _LOGGER.warning("Skipping unreadable image %s: %s", path, reason)
    names = [
        f"{os.path.relpath(path, root)} ({reason})"
        for path, reason in list(bad.items())[:_MAX_NAMED_IN_WARNING]
    ]
    more = len(bad) - len(names)
    listed = "; ".join(names) + (f"; and {more} more (see the log)" if more else "")
    warnings.warn(
        f"Skipped {len(bad)} of {total} image files in {root} that could not be read "
        f"or decoded: {listed}.",
        stacklevel=2,
    )


# Sources for the batching pipelines.


def _as_dataset(source, caller):
    """Turns a source into an unbatched dataset of `image` or `(image, label)`."""
    if isinstance(source, tf.data.Dataset):
        dataset = source
        spec = dataset.element_spec
        if isinstance(spec, dict):
            if "image" not in spec:
                raise ValueError(
                    f"`{caller}` needs dict elements with an 'image' key. Received "
                    f"keys: {sorted(spec)}"
                )
            has_label = "label" in spec

            def from_dict(example):
                if has_label:
                    return example["image"], tf.cast(example["label"], tf.int64)
                return example["image"]

            dataset = dataset.map(from_dict, num_parallel_calls=tf.data.AUTOTUNE)
        elif isinstance(spec, tuple) and len(spec) == 1:
            dataset = dataset.map(_first, num_parallel_calls=tf.data.AUTOTUNE)
    elif isinstance(source, tuple) and len(source) == 2:
        images, class_ids = (np.asarray(array) for array in source)
        images = _check_image_array(images, caller)
        if class_ids.ndim != 1 or len(class_ids) != len(images):
            raise ValueError(
                f"`{caller}` needs one label per image. Received: "
                f"{len(images)} images and labels of shape {class_ids.shape}"
            )
        if not np.issubdtype(class_ids.dtype, np.integer):
            raise ValueError(
                f"`{caller}` needs integer class ids as labels. Received: labels of "
                f"dtype {class_ids.dtype}"
            )
        dataset = tf.data.Dataset.from_tensor_slices(
            (images, class_ids.astype(np.int64))
        )
    elif isinstance(source, np.ndarray):
        dataset = tf.data.Dataset.from_tensor_slices(_check_image_array(source, caller))
    else:
        raise TypeError(
            f"`{caller}` needs a tf.data.Dataset (e.g. from keras_simclr.data.load), "
            "a NumPy array of images or an (images, labels) tuple. Received: "
            f"{type(source).__name__}"
        )
    spec = dataset.element_spec
    labelled = isinstance(spec, tuple)
    if labelled and len(spec) != 2:
        raise ValueError(
            f"`{caller}` needs elements `image` or `(image, label)`. Received a "
            f"dataset with elements of {len(spec)} components: {spec}"
        )
    image_spec = spec[0] if labelled else spec
    shape = image_spec.shape
    if shape.rank != 3 or shape[-1] is None:
        raise ValueError(
            f"`{caller}` needs images (H, W, C) with a known number of channels C. "
            f"Received element shape {shape}. Set the shape with tf.ensure_shape, "
            "e.g. to (None, None, 3) for RGB images of different sizes."
        )
    if image_spec.dtype != tf.uint8 and not image_spec.dtype.is_floating:
        raise ValueError(
            f"`{caller}` needs uint8 images (or floats in [0, 1]). Received dtype "
            f"{image_spec.dtype.name}"
        )
    if int(dataset.cardinality()) == 0:
        raise ValueError(f"`{caller}` received an empty source.")
    return dataset, labelled, not shape.is_fully_defined()


def _image_spec(dataset):
    spec = dataset.element_spec
    return spec[0] if isinstance(spec, tuple) else spec


def _check_image_array(images, caller):
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"`{caller}` needs an array of images of shape (n, H, W, C) or (n, H, W). "
            f"Received shape {images.shape}"
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"`{caller}` needs uint8 images (or floats in [0, 1]). Received dtype "
            f"{images.dtype}"
        )
    return images


def _to_unit_float(images):
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def _first(image):
    return image


def _drop_label(image, label):
    del label
    return image


def _as_tuple(images, class_ids):
    return images, class_ids


def _as_single(images):
    return (images,)
