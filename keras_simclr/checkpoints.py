"""Resumable pretraining checkpoints of any Keras backend's variables.

The command line keeps `tf.train.Checkpoint`s on TensorFlow, whose runs and files
stay as they were. TensorFlow cannot track the variables of Keras' JAX backend, so
there the job keeps these instead: every variable of the model (weights, batch-norm
statistics, random-seed states) and of its optimizers, as NumPy arrays in one
`ckpt-<step>.npz` per checkpoint, named by owner, position and name. The archive is
written under a temporary name and renamed, and then the `checkpoint.json` index
names it the latest: a run killed at any moment resumes from the last complete one.
"""

import io
import json
import os

import numpy as np
import tensorflow as tf

from keras_simclr import files

INDEX = "checkpoint.json"


class ArrayCheckpointManager:
    """Saves and restores the variables of named objects as `.npz` checkpoints.

    The subset of `tf.train.CheckpointManager` the job uses: `latest_checkpoint`,
    `save(checkpoint_number)` and `restore(path)`.

    Args:
        objects: dict of name -> object with `variables` (a model, an optimizer),
            in a fixed order.
        directory: the folder of the checkpoints and their index.
        max_to_keep: how many checkpoints to keep (the oldest are deleted).
    """

    def __init__(self, objects, directory, max_to_keep):
        self.objects = dict(objects)
        self.directory = directory
        self.max_to_keep = max_to_keep

    def _variables(self):
        named = {}
        for owner, obj in self.objects.items():
            for position, variable in enumerate(obj.variables):
                named[f"{owner}/{position:05d}/{variable.name}"] = variable
        return named

    def _index(self):
        path = os.path.join(self.directory, INDEX)
        if not tf.io.gfile.exists(path):
            return []
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)["checkpoints"]

    @property
    def latest_checkpoint(self):
        """The latest checkpoint's path without its `.npz` suffix, or `None`."""
        kept = self._index()
        return os.path.join(self.directory, kept[-1]) if kept else None

    def save(self, checkpoint_number):
        """Writes checkpoint `checkpoint_number` and makes it the latest."""
        name = f"ckpt-{int(checkpoint_number)}"
        buffer = io.BytesIO()
        np.savez(
            buffer,
            **{key: np.asarray(v.numpy()) for key, v in self._variables().items()},
        )
        files.write_atomic(os.path.join(self.directory, name + ".npz"), buffer.getvalue())
        kept = [n for n in self._index() if n != name] + [name]
        dropped, kept = kept[: -self.max_to_keep], kept[-self.max_to_keep :]
        files.write_atomic(
            os.path.join(self.directory, INDEX), json.dumps({"checkpoints": kept})
        )
        for old in dropped:
            path = os.path.join(self.directory, old + ".npz")
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
        return os.path.join(self.directory, name)

    def restore(self, path):
        """Assigns checkpoint `path`'s arrays to the variables.

        Raises:
            ValueError: the checkpoint holds other variables, or other shapes,
                than the objects have (nothing is assigned then).
        """
        with tf.io.gfile.GFile(path + ".npz", "rb") as f:
            with np.load(io.BytesIO(f.read())) as archive:
                arrays = {key: archive[key] for key in archive.files}
        variables = self._variables()
        missing = sorted(set(variables) - set(arrays))
        unexpected = sorted(set(arrays) - set(variables))
        if missing or unexpected:
            raise ValueError(
                f"the checkpoint lacks {len(missing)} of the model's variables "
                f"{missing[:3]} and holds {len(unexpected)} it does not have "
                f"{unexpected[:3]}"
            )
        shapes = [
            f"{key}: {arrays[key].shape} vs {tuple(v.shape)}"
            for key, v in variables.items()
            if tuple(arrays[key].shape) != tuple(v.shape)
        ]
        if shapes:
            raise ValueError(f"the checkpoint's shapes differ: {shapes[:3]}")
        for key, variable in variables.items():
            variable.assign(arrays[key])
