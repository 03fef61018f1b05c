"""A folder of images, with labels from its sub-folders.

Every `.jpg`, `.jpeg`, `.png`, `.bmp` and `.gif` file below the folder loads
without any preparation, at full resolution or resized; `keras_simclr.data.load`
documents the layout rules (split directories, class sub-folders, hash order).
Files that cannot be decoded are found once per process and skipped with a warning.
"""

import hashlib
import logging
import os
import re
import types
import warnings

import numpy as np
import tensorflow as tf

from keras_simclr.data.pipelines import _resize_image
from keras_simclr.data.splits import _parse_split
from keras_simclr.data.splits import _resolve_split
from keras_simclr.data.splits import _split_names

_LOGGER = logging.getLogger(__name__)

# The formats `tf.io.decode_image` reads (GIF: first frame only).
_IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_MAX_NAMED_IN_WARNING = 20

# Decode checks of folder images, keyed by (path, size, mtime_ns), so that `info()`
# and the `load()` calls of one run decode every file once. Good files are kept as
# hashes (about 60 bytes each, 80 MB for ImageNet's 1.28M), bad ones with the reason.
_GOOD_FILES = set()
_BAD_FILES = {}


def _describe_folder(root, split, image_size, labels):
    """The `DatasetInfo` fields of a split of the folder, as `_load_folder` yields it."""
    listing = _scan_folder(root, split, labels)
    channels = 3
    shape = (*image_size, channels) if image_size else (None, None, channels)
    labelled = listing.class_names is not None
    return dict(
        num_examples=len(listing.files),
        num_classes=len(listing.class_names) if labelled else None,
        image_shape=shape,
        labelled=labelled,
        class_names=listing.class_names,
    )


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
