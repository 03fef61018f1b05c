"""Writes Fashion-MNIST-style IDX files for tests (a helper module, not a test file)."""

import gzip
import struct

import numpy as np

from keras_simclr import data


def write_idx(path, array, magic=None, truncate=0, compress=True):
    array = np.asarray(array, np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    content = header + array.tobytes()
    content = content[: len(content) - truncate]
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as file:
            file.write(content)
    else:
        with open(path, "wb") as file:
            file.write(content)


def write_fashion_mnist(directory, sizes=(6, 4), compress=True, seed=0):
    """Random images and labels in the four IDX files; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for base, n in zip(("train", "t10k"), sizes):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(directory / f"{base}-images-idx3-ubyte", images, compress=compress)
        write_idx(directory / f"{base}-labels-idx1-ubyte", labels, compress=compress)
        arrays["test" if base == "t10k" else base] = (images, labels)
    return arrays


def write_real_subset(directory, sizes=(512, 256)):
    """The first examples of the real Fashion-MNIST splits, as a small data_dir."""
    for base, split, n in zip(("train", "t10k"), ("train", "test"), sizes):
        images, labels = data.load_fashion_mnist(split=f"{split}[:{n}]")
        write_idx(directory / f"{base}-images-idx3-ubyte", images[..., 0])
        write_idx(directory / f"{base}-labels-idx1-ubyte", labels)
    return directory
