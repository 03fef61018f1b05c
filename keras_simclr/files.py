"""Writing files that are never seen half-written, on any TensorFlow file system.

Every file goes through `tf.io.gfile`, so a `gs://` (or `ram://`, or any TensorFlow
file system's) path works like a local one. Each is written under a temporary name
in the same folder, then renamed over the target: a killed run leaves the previous
file whole, never a truncated one.
"""

import os

import tensorflow as tf


def _temporary_name(path):
    directory, name = os.path.split(path)
    # Keras picks a saved model's format by the suffix: keep it.
    return os.path.join(directory, f".tmp-{os.getpid()}-{name}")


def _publish(temporary, path):
    tf.io.gfile.rename(temporary, path, overwrite=True)


def write_atomic(path, content):
    """Writes `content` (`str` or `bytes`) to `path`, creating its folder."""
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temporary = _temporary_name(path)
    with tf.io.gfile.GFile(temporary, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    _publish(temporary, path)


def save_atomic(model, path):
    """Saves the Keras `model` to `path` (a `.keras` file)."""
    temporary = _temporary_name(path)
    model.save(temporary)
    _publish(temporary, path)
