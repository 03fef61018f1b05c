"""Fashion-MNIST from its four IDX files, offline.

Fashion-MNIST (Xiao et al., 2017) is not in the paper; it is the data set this
library pretrains on offline in minutes, as a stand-in for the CIFAR-10 runs of
Appendix B.9. The files come from `data_dir`, else from the Debian package
`dataset-fashion-mnist`; without either, `keras_simclr.data.load` falls back to
tfds' `fashion_mnist`.
"""

import gzip
import os
import zlib

import numpy as np
import tensorflow as tf

from keras_simclr.data.pipelines import _resize_array
from keras_simclr.data.splits import _parse_split
from keras_simclr.data.splits import _resolve_split
from keras_simclr.data.splits import _slice_length
from keras_simclr.data.splits import _split_names

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


def _load_fashion_mnist_dataset(directory, split, image_size, labels):
    """The split of the IDX files in `directory` as `keras_simclr.data.load` yields it."""
    images, class_ids = load_fashion_mnist(directory, split)
    images = _resize_array(images, image_size)
    if labels is False:
        return tf.data.Dataset.from_tensor_slices(images)
    return tf.data.Dataset.from_tensor_slices((images, class_ids))


def _describe_fashion_mnist(directory, split, image_size, labels):
    """The `DatasetInfo` fields of a split of the IDX files, read from the headers."""
    counts = {
        base: _idx_header(
            _find_idx_file(directory, _FASHION_MNIST_FILES[base][1]),
            _IDX_LABELS_MAGIC,
        )[0]
        for base in _fashion_mnist_splits(split)
    }
    instructions = _resolve_split(split, counts)
    labelled = labels is not False
    return dict(
        num_examples=sum(_slice_length(i, counts) for i in instructions),
        num_classes=len(_FASHION_MNIST_CLASSES) if labelled else None,
        image_shape=(*(image_size or (28, 28)), 1),
        labelled=labelled,
        class_names=_FASHION_MNIST_CLASSES if labelled else None,
    )


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
