"""Finding a released checkpoint on disk, opening it, and reading its layout."""

import math
import os

import tensorflow as tf

from keras_simclr.models.convert.layout import OBJECT_GRAPH_KEY
from keras_simclr.models.convert.layout import RELEASES
from keras_simclr.models.convert.layout import first_line
from keras_simclr.models.convert.tf1 import Tf1Names
from keras_simclr.models.convert.tf2 import Tf2Names


def read_layout(path, ema):
    """The `Layout` of the checkpoint `path` names (`ema`: its moving averages)."""
    prefix = locate(path)
    reader = _open(prefix)
    shapes = reader.get_variable_to_shape_map()
    if OBJECT_GRAPH_KEY in shapes:
        if ema:
            raise ValueError(
                f"{prefix!r} is a TF2 checkpoint; `ema=True` reads the `ema_model/` copy "
                "that TF1 checkpoints hold. Convert without `ema`."
            )
        names = Tf2Names(reader, prefix)
    else:
        names = Tf1Names(shapes, prefix, ema)
    return names.layout(reader)


def locate(path):
    """The checkpoint prefix that `path` names (see `from_reference_checkpoint`)."""
    path = os.fspath(path)
    path = path.rstrip("/") if len(path) > 1 else path
    exists = tf.io.gfile.exists
    if exists(path + ".index"):
        return path
    if tf.io.gfile.isdir(path):
        for saved_model in (path, os.path.join(path, "saved_model")):
            if exists(os.path.join(saved_model, "saved_model.pb")):
                prefix = os.path.join(saved_model, "variables", "variables")
                if not exists(prefix + ".index"):
                    raise ValueError(
                        f"The SavedModel {saved_model!r} has no variables/variables.index: "
                        "the download is incomplete. Download the whole saved_model/ "
                        "folder, variables/ included."
                    )
                return prefix
        if exists(os.path.join(path, "variables.index")):
            return os.path.join(path, "variables")
        latest = tf.train.latest_checkpoint(path)
        if latest and exists(latest + ".index"):
            return latest
        indexes = sorted(tf.io.gfile.glob(os.path.join(path, "*.index")))
        if len(indexes) == 1:
            return indexes[0][: -len(".index")]
        if indexes:
            names = ", ".join(os.path.basename(i)[: -len(".index")] for i in indexes)
            raise ValueError(
                f"{path!r} holds several checkpoints ({names}) and no `checkpoint` file "
                f"naming the latest. Pass one prefix, e.g. {indexes[-1][: -len('.index')]!r}."
            )
    raise ValueError(
        f"{path!r} is neither a TF1 checkpoint (a prefix such as .../model.ckpt-250228 "
        "whose .index and .data-* files exist, or a directory holding one) nor a TF2 "
        "SavedModel (a directory with saved_model.pb and variables/). "
        f"{RELEASES}"
    )


def _open(prefix):
    """A checkpoint reader, after checking that the data files hold every tensor."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(
            f"Cannot read the checkpoint index {prefix}.index ({first_line(error)}): the "
            "file is truncated or corrupt. Download it again."
        ) from None
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    needed = sum(
        math.prod(shape) * dtypes[key].size
        for key, shape in shapes.items()
        if dtypes[key] != tf.string
    )
    shards = tf.io.gfile.glob(prefix + ".data-*-of-*")
    expected_shards = {int(name.rsplit("-of-", 1)[1]) for name in shards}
    missing = len(expected_shards) != 1 or len(shards) != expected_shards.pop()
    present = sum(tf.io.gfile.stat(name).length for name in shards)
    if missing or present < needed:
        problem = (
            "data files are missing" if missing or not shards
            else f"data files hold {present:,} bytes, fewer than the {needed:,} its tensors need"
        )
        raise ValueError(
            f"The checkpoint {prefix!r} is incomplete: its {problem} (a truncated "
            f"download?). Download {os.path.basename(prefix)}.data-* again."
        )
    return reader


def saved_model_directory(path):
    """The SavedModel directory `path` names: itself, or its `saved_model/` folder.

    Raises a `ValueError` when `path` holds no SavedModel (a TF1 checkpoint, say),
    which `verify_saved_model` needs: it runs the SavedModel's graph.
    """
    path = os.fspath(path)
    for directory in (path, os.path.join(path, "saved_model")):
        if tf.io.gfile.exists(os.path.join(directory, "saved_model.pb")):
            return directory
    raise ValueError(
        f"{path!r} is not a SavedModel directory (no saved_model.pb): verification runs "
        "a released SavedModel (gs://simclr-checkpoints-tf2/.../saved_model) against its "
        "conversion; a TF1 checkpoint has no graph to run."
    )
