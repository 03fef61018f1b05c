"""Data sets by name: `load` and `info` dispatch to the source that holds them.

Names: a TensorFlow Datasets name (`keras_simclr.data.tfds`), `"fashion_mnist"`
(its IDX files, `keras_simclr.data.idx`, else tfds) or `"folder:/path"`
(`keras_simclr.data.folder`). Every source yields unbatched `uint8` images (and
`int64` labels) and takes splits with tfds' slicing syntax
(`keras_simclr.data.splits`).
"""

import dataclasses
import os

import numpy as np

from keras_simclr.data import folder
from keras_simclr.data import idx
from keras_simclr.data import tfds as tfds_source


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

    def to_dict(self):
        """The fields as a JSON-serialisable dict (a plain record, not a Keras object)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record):
        """The `DatasetInfo` of a `to_dict()` record, or of one that
        `keras.saving.serialize_keras_object` wrote before it was a plain record."""
        record = dict(record.get("config", record) if "class_name" in record else record)
        record["image_shape"] = tuple(record["image_shape"])
        if record.get("class_names") is not None:
            record["class_names"] = tuple(record["class_names"])
        return cls(**record)


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
        return folder._load_folder(
            target, split, image_size, labels, shuffle_files, seed
        )
    if kind == "fashion_mnist":
        directory = idx._fashion_mnist_dir(data_dir)
        if directory is not None:
            return idx._load_fashion_mnist_dataset(directory, split, image_size, labels)
        target = "fashion_mnist"
    return tfds_source._load_tfds(
        target, split, data_dir, image_size, shuffle_files, seed, labels
    )


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
        fields = folder._describe_folder(target, split, image_size, labels)
        return DatasetInfo(**fields)
    if kind == "fashion_mnist":
        directory = idx._fashion_mnist_dir(data_dir)
        if directory is not None:
            fields = idx._describe_fashion_mnist(directory, split, image_size, labels)
            return DatasetInfo(**fields)
        target = "fashion_mnist"
    fields = tfds_source._describe_tfds(target, split, data_dir, image_size, labels)
    return DatasetInfo(**fields)


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
