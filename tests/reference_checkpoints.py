"""Checkpoints with the reference implementation's variable names, for test_convert.py.

`scripts/make_reference_fixtures.py` ran the reference's own model code
(google-research/simclr, TF1 `resnet.py`/`model_util.py` and TF2 `tf2/model.py`)
once per fixture, with every variable set by `reference_value`, and recorded in
`tests/data/reference/` the variables' names and shapes (`<name>.json`) and the
reference's outputs h, z and logits on `reference_images()` (`<name>.npz`). The
functions here rebuild those checkpoints in seconds, without the reference's code:
TF1 checkpoints are tensors under their names, TF2 checkpoints are real object
graphs whose attribute paths are the keys. The script imports this module, so the
values and images it used are these.
"""

import json
import math
import os
import pathlib
import zlib

import numpy as np
import tensorflow as tf

FIXTURES = pathlib.Path(__file__).resolve().parent / "data" / "reference"
# TF2 checkpoints store a variable at `<attribute path>/.ATTRIBUTES/VARIABLE_VALUE`.
TF2_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SEED = 20200213  # SimCLR's arXiv date


def reference_value(name, shape, salt=0):
    """The value of variable `name`, drawn from a generator seeded by the name.

    Kernels are He-normal (standard deviation sqrt(2 / fan_in)), so a convolution
    and ReLU keep the scale of their input; batch-norm scales lie in [0.2, 1.0], so
    a residual branch (three scales) adds a few percent to the variance of its
    block's input and h stays of order one through 33 blocks, with the
    selective-kernel attention far from saturation; variances lie in [0.5, 1.5] and
    offsets and means in [-0.1, 0.1], so no batch norm is the identity. The rule
    reads only the variable's name and shape, the same in both formats. `salt` draws
    another set (an EMA copy).

    Args:
        name: the variable's name without the TF2 suffix (`base_model/conv2d_3/kernel`
            or `model/resnet_model/.../kernel`).
        shape: the variable's shape.
        salt: int, 0 for the fixtures' values.

    Returns:
        A float32 NumPy array of `shape`.
    """
    shape = tuple(int(side) for side in shape)
    generator = np.random.default_rng([_SEED, salt, zlib.crc32(name.encode())])
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "kernel":
        fan_in = math.prod(shape[:-1])
        value = generator.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    elif leaf == "gamma":
        value = generator.uniform(0.2, 1.0, shape)
    elif leaf == "moving_variance":
        value = generator.uniform(0.5, 1.5, shape)
    elif leaf in ("beta", "moving_mean", "bias"):
        value = generator.uniform(-0.1, 0.1, shape)
    else:
        raise ValueError(f"No value rule for variable {name!r}")
    return value.astype(np.float32)


def reference_images(shape=(2, 65, 65, 3)):
    """The fixed input of the fixtures: uniform [0, 1) images of an odd size, so that
    every strided layer's padding matters."""
    return np.random.default_rng(_SEED).uniform(0.0, 1.0, shape).astype(np.float32)


def load_fixture(name):
    """The recorded variables (name -> shape) and outputs of fixture `name`."""
    spec = json.loads((FIXTURES / f"{name}.json").read_text())
    with np.load(FIXTURES / f"{name}.npz") as outputs:
        return spec, dict(outputs)


def fixture_values(spec, salt=0):
    """Every variable of a fixture's spec, valued by `reference_value`."""
    return {
        key: reference_value(key.removesuffix(TF2_SUFFIX), shape, salt)
        for key, shape in spec["variables"].items()
    }


def write_tf1_checkpoint(prefix, tensors):
    """Writes `tensors` (name -> array) under their names, as `tf.compat.v1.train.Saver`
    does. Returns the prefix."""
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[name]) for name in names],
    )
    return str(prefix)


def write_tf2_checkpoint(prefix, tensors, saved_model_keys=False):
    """Writes `tensors` (TF2 key -> array) as an object-graph checkpoint.

    See `attach_tf2_variables`. Returns the path written (the prefix and a number).
    """
    root = tf.train.Checkpoint()
    attach_tf2_variables(root, tensors, saved_model_keys)
    return root.write(str(prefix))


def attach_tf2_variables(root, tensors, saved_model_keys=False):
    """Gives `root` the variables `tensors` (TF2 key -> array) names, as attributes.

    Each key `a/b/0/kernel/.ATTRIBUTES/VARIABLE_VALUE` becomes a variable reached
    from `root` through the attributes `a`, `b`, `0`, `kernel`, so a checkpoint of
    `root` has the object graph (and the keys) that `tf.train.Checkpoint` writes
    for the reference's Keras model.

    With `saved_model_keys`, each part of the model (`a/b`) also lists its
    variables, in another order, under `a/b/variables/N`, as the Keras layers of a
    SavedModel do: the shortest path names a variable's key, so the keys become
    `a/b/variables/N/...`, and only the object graph still has the layers' paths.
    """
    parts = {}
    for key, value in tensors.items():
        if not key.endswith(TF2_SUFFIX):
            raise ValueError(f"Not a TF2 variable key: {key!r}")
        *parents, leaf = key.removesuffix(TF2_SUFFIX).split("/")
        node = root
        for depth, attribute in enumerate(parents):
            if not hasattr(node, attribute):
                setattr(node, attribute, tf.__internal__.tracking.AutoTrackable())
            node = getattr(node, attribute)
            if depth == 1:
                part = node
        variable = tf.Variable(value, name=leaf)
        setattr(node, leaf, variable)
        parts.setdefault(id(part), (part, []))[1].append((key, variable))
    if saved_model_keys:
        for part, variables in parts.values():
            part.variables = [variable for _, variable in sorted(variables, reverse=True)]
    return root


# The release folder each fixture is written to: the default `ft_proj_selector` (1
# for SimCLRv2's `finetuned_*` releases, else 0) is read from the path.
RELEASE_FOLDERS = {
    "tf2_r50_1x_sk0": "simclrv2/finetuned_10pct/r50_1x_sk0/saved_model/variables",
    "tf2_r50_1x_sk1": "simclrv2/pretrained/r50_1x_sk1/saved_model/variables",
    "tf2_r101_1x_sk0": "simclrv2/pretrained/r101_1x_sk0/saved_model/variables",
    "tf1_r50_1x_sk0": "simclrv1/pretrain/1x",
    "tf1_r50_1x_sk1": "simclrv2/finetuned_1pct/r50_1x_sk1",
}


def write_release(name, root, saved_model_keys=False, extra=None, drop=(), values=None):
    """Writes fixture `name`'s checkpoint under `root` in its release folder.

    TF1 checkpoints also get what the released ones carry besides the model: the
    step counter and the optimizer's momentum slots. `extra` adds (or replaces)
    tensors, `drop` removes some, `values` replaces the rule's. Returns the path
    to convert: the TF1 folder, or the SavedModel-like `variables/variables` prefix.
    """
    spec, _ = load_fixture(name)
    values = dict(values or fixture_values(spec))
    folder = pathlib.Path(root) / RELEASE_FOLDERS[name]
    folder.mkdir(parents=True, exist_ok=True)
    tf1 = spec["settings"]["format"] == "tf1"
    if tf1:
        values["global_step"] = np.array(250228, np.int64)
        for key in list(values)[:5]:
            values[f"{key}/Momentum"] = np.zeros_like(values[key])
    values.update(extra or {})
    for key in drop:
        del values[key]
    if tf1:
        write_tf1_checkpoint(folder / "model.ckpt-250228", values)
        return folder
    written = write_tf2_checkpoint(folder / "ckpt", values, saved_model_keys)
    # A SavedModel's variables/ folder holds the prefix `variables`.
    for path in tf.io.gfile.glob(written + ".*"):
        os.rename(path, folder / ("variables" + path[len(written):]))
    return folder / "variables"
