"""The official SimCLR v1 and v2 weights as keras_simclr models.

The reference implementation (google-research/simclr) released its ImageNet models
as TF1 checkpoints (gs://simclr-checkpoints) and as TF2 SavedModels converted from
them (gs://simclr-checkpoints-tf2). Neither can be fine-tuned as a Keras 3 model: a
checkpoint holds only tensors, a SavedModel a frozen TF2 graph. This module reads
the tensors of either (with `tf.train.load_checkpoint`, without loading any graph)
into the encoder, projection head and linear classifier that `keras_simclr.models`
builds, whose layers follow the reference's one for one.

- TF1 checkpoints name variables by creation order: `base_model/conv2d_N/kernel`
  and `base_model/batch_normalization_N/...` (the N-th convolution and batch norm
  the reference's `resnet.py` creates), `head_contrastive/nl_J/...` and
  `head_supervised/linear_layer/dense/...` (`model_util.py`).
- TF2 checkpoints (a SavedModel's `variables/`) identify variables by the
  attributes that reach them from the reference's Keras model (`tf2/model.py`):
  `resnet_model/block_groups/G/layers/B/conv_relu_dropblock_layers/K/conv2d/kernel`,
  `_projection_head/linear_layers/J/...`, `supervised_head/linear_layer/dense/...`.
  A SavedModel's keys are shorter aliases (`resnet_model/variables/99`), so the
  paths are followed through the checkpoint's object graph, never parsed from keys.
"""

import dataclasses
import logging
import math
import os
import re

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from keras_simclr import checks
from keras_simclr.models import heads
from keras_simclr.models.resnet import _ARCHITECTURES
from keras_simclr.models.resnet import _SK_MIN_DIM
from keras_simclr.models.resnet import resnet
from keras_simclr.models.simclr import SimCLR

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Marks, in front of a name, a key the checkpoint lacks.
_MISSING = "?"
# The weights of each kind of layer, named as in both formats.
_WEIGHTS = {
    "conv": ("kernel",),
    "bn": ("gamma", "beta", "moving_mean", "moving_variance"),
    "linear": ("kernel", "bias"),
}
_LEAVES = ("kernel", "bias") + _WEIGHTS["bn"]
# Total bottleneck blocks -> depth, for the depths the reference released.
_RELEASED_DEPTHS = (50, 101, 152)
_DEPTH_OF_BLOCKS = {sum(_ARCHITECTURES[d][1]): d for d in _RELEASED_DEPTHS}
# SimCLRv2's selective-kernel ratio; any ratio that gives the same attention widths
# builds the same network.
_SK_RATIO = 0.0625
_RELEASES = (
    "The converter reads the official SimCLR v1/v2 ImageNet ResNets: TF1 checkpoints "
    "(gs://simclr-checkpoints/...) and TF2 SavedModels (gs://simclr-checkpoints-tf2/...)."
)


def from_reference_checkpoint(
    path,
    input_shape=(224, 224, 3),
    ema=False,
    ft_proj_selector=None,
    classifier=False,
):
    """Builds a `SimCLR` model holding the weights of an official SimCLR release.

    Reads the ImageNet models that Chen et al. released with SimCLR (2020) and
    SimCLRv2 (2020b, Table 1): ResNet-50, -101 and -152, 1x to 4x wide, with or
    without selective kernels, as TF1 checkpoints or TF2 SavedModels. The depth,
    width, selective kernels, projection head and classifier are read from the
    tensors' shapes. The reference's layers are the ones `resnet()` and
    `projection_head()` build (ImageNet stem, fixed padding, ResNet v1.5
    bottlenecks, ResNet-D with selective kernels, batch norm with epsilon 1e-5), so
    the converted model computes what the reference computes, to float32 rounding.

    The released checkpoints also hold a linear classifier (1000 ImageNet classes):
    on h for the pretrained and supervised models, on the output of the projection
    head's first layer for SimCLRv2's fine-tuned ones (the reference's
    `ft_proj_selector=1`; Chen et al., 2020b, Section 2). The two cannot be told apart from
    the tensors (both read 2048 x width features), so `ft_proj_selector` says
    which. A classifier on h becomes the `SimCLR` model's linear probe;
    `classifier=True` also returns the whole network as a classifier.

    SimCLRv1's releases have no projection head; their model gets an empty head
    (z = h), and fine-tuning starts from h.

    Args:
        path: a TF1 checkpoint prefix (`.../model.ckpt-250228`), a directory holding
            one, a SavedModel directory (`.../saved_model`) or its
            `variables/variables` prefix. Any path TensorFlow reads works,
            `gs://` included.
        input_shape: `(height, width, 3)` of the encoder's input; the sides may be
            `None`. The reference takes RGB images in [0, 1]. Defaults to
            `(224, 224, 3)`.
        ema: bool, read the exponential-moving-average copy of a TF1 checkpoint's
            variables (`ema_model/...`) instead of the trained ones. Defaults to
            `False`.
        ft_proj_selector: the projection-head layer the checkpoint's classifier
            reads: 0 (h) or 1 (SimCLRv2's fine-tuned releases). `None` chooses 1
            when the path names a SimCLRv2 fine-tuned release (a `finetuned_...`
            folder) and the checkpoint has a head, else 0. Defaults to `None`.
        classifier: bool, also return the classifier (images -> logits).
            Defaults to `False`.

    Returns:
        A `SimCLR` model (`encoder`, `projection_head`, and the classifier as its
        `probe` when it reads h), or `(model, classifier)` with
        `classifier=True`: a functional `keras.Model` mapping images to logits
        through the model's encoder, the head's first `ft_proj_selector` layers and
        the checkpoint's linear layer (sharing their weights), or `None` when the
        checkpoint has no classifier.

    Example:

    ```python
    # A copy of gs://simclr-checkpoints-tf2/simclrv2/finetuned_10pct/r50_1x_sk0
    model, classifier = keras_simclr.models.from_reference_checkpoint(
        "simclrv2/finetuned_10pct/r50_1x_sk0/saved_model", classifier=True
    )
    h = model.encoder(images)  # images: (batch, 224, 224, 3) in [0, 1]
    logits = classifier(images)  # 1000 ImageNet classes, from head layer 1
    ```
    """
    checks.boolean("ema", ema)
    checks.boolean("classifier", classifier)
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            "`input_shape` must be (height, width, 3): the released models take RGB "
            f"images. Received: input_shape={input_shape!r}"
        )
    reference = _read_layout(path, ema)
    selector = _selector(path, ft_proj_selector, reference)
    model, network, layers = _build(reference, input_shape, selector)
    _assign(reference, layers)
    return (model, network) if classifier else model


def verify_saved_model(saved_model, model, classifier=None, images=None, num_images=2, seed=0):
    """Compares a converted model with the SavedModel it came from, on random images.

    Runs the released SavedModel (`tf.saved_model.load`, called as the reference's
    colabs call it: `saved_model(images, trainable=False)`) and the converted
    `model` on the same images (random ones in [0, 1] unless given), and measures
    the largest difference of each output both have: h (`final_avg_pool`), z
    (`proj_head_output`) and, with `classifier`, the logits (`logits_sup`).

    Args:
        saved_model: path of the SavedModel directory (or of the folder holding
            its `saved_model/`).
        model: the `SimCLR` model `from_reference_checkpoint` returned for it.
        classifier: optional classifier it returned.
        images: optional float32 batch `(n, height, width, 3)` in [0, 1] to compare
            on. Defaults to random images of the encoder's input size (224 when it
            takes any).
        num_images: positive int, how many random images. Defaults to `2`.
        seed: int, seed of the random images. Defaults to `0`.

    Returns:
        A dict mapping `"h"`, `"z"`, `"logits"` (those compared) to a dict with
        `max_abs_difference` and `relative_difference` (that difference over the
        largest magnitude of the SavedModel's output).

    Example:

    ```python
    path = "simclrv2/finetuned_10pct/r50_1x_sk0/saved_model"
    model, classifier = keras_simclr.models.from_reference_checkpoint(path, classifier=True)
    keras_simclr.models.verify_saved_model(path, model, classifier)
    # {'h': {'max_abs_difference': 2e-06, 'relative_difference': 1e-07}, ...}
    ```
    """
    directory = saved_model_directory(saved_model)
    if not isinstance(model, SimCLR):
        raise ValueError(
            "`model` must be the SimCLR model `from_reference_checkpoint` returned. "
            f"Received: model of type {type(model).__name__}"
        )
    num_images = checks.positive_int("num_images", num_images)
    if images is None:
        height, width = (side or 224 for side in model.encoder.inputs[0].shape[1:3])
        images = np.random.default_rng(seed).uniform(0.0, 1.0, (num_images, height, width, 3))
    images = tf.constant(images, tf.float32)
    logger = tf.get_logger()
    level = logger.level
    # The released SavedModels log a warning per function with a custom gradient
    # (hundreds) while loading; inference needs no gradient.
    logger.setLevel(logging.ERROR)
    try:
        loaded = tf.saved_model.load(directory)
    finally:
        logger.setLevel(level)
    try:
        outputs = loaded(images, trainable=False)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"The SavedModel at {directory!r} cannot be called as the released ones are "
            f"(`model(images, trainable=False)` returning a dict): {error}"
        ) from None
    if not isinstance(outputs, dict):
        raise ValueError(
            f"The SavedModel at {directory!r} returned {type(outputs).__name__}, not the "
            "dict of named outputs (final_avg_pool, logits_sup, ...) the releases return."
        )
    h = model.encoder(images, training=False)
    ours = {
        "h": ("final_avg_pool", h),
        "z": ("proj_head_output", model.projection_head(h, training=False)),
    }
    if classifier is not None:
        ours["logits"] = ("logits_sup", classifier(images, training=False))
    differences = {}
    for name, (key, value) in ours.items():
        if key not in outputs:
            continue
        reference = np.asarray(outputs[key], np.float64)
        difference = float(np.max(np.abs(np.asarray(value, np.float64) - reference)))
        scale = float(np.max(np.abs(reference)))
        differences[name] = {
            "max_abs_difference": difference,
            "relative_difference": difference / scale if scale else difference,
        }
    if not differences:
        raise ValueError(
            f"The SavedModel at {directory!r} returned none of final_avg_pool, "
            f"proj_head_output, logits_sup (it returned {sorted(outputs)})."
        )
    return differences


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


# Reading -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What a checkpoint holds, and where: the architecture and, for every weight of
    our layers, the checkpoint key that holds it."""

    reader: object
    shapes: dict  # checkpoint key -> shape, for the keys below
    prefix: str
    depth: int
    width_multiplier: float
    sk_ratio: float
    head_dims: tuple  # output width of each projection-head layer
    num_classes: int | None
    # (part, layer name, weight) -> checkpoint key; part is "encoder",
    # "projection_head" or "supervised_head".
    keys: dict


def _read_layout(path, ema):
    prefix = _locate(path)
    reader = _open(prefix)
    shapes = reader.get_variable_to_shape_map()
    if _OBJECT_GRAPH_KEY in shapes:
        if ema:
            raise ValueError(
                f"{prefix!r} is a TF2 checkpoint; `ema=True` reads the `ema_model/` copy "
                "that TF1 checkpoints hold. Convert without `ema`."
            )
        names = _Tf2Names(reader, prefix)
    else:
        names = _Tf1Names(shapes, prefix, ema)
    return names.layout(reader)


def _locate(path):
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
        f"{_RELEASES}"
    )


def _open(prefix):
    """A checkpoint reader, after checking that the data files hold every tensor."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(
            f"Cannot read the checkpoint index {prefix}.index ({_first_line(error)}): the "
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


def _first_line(error):
    message = getattr(error, "message", None) or str(error)
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__


def _encoder_layers(depth, selective_kernels):
    """Our encoder's weighted layers in the order the reference creates them.

    Yields `(layer name, kind, path)`: kind is "conv" or "bn"; path is the
    reference TF2 layer's attributes under its `resnet_model`. The order is the TF1
    creation order, which numbers `conv2d_N` and `batch_normalization_N`: in a
    stage's first block the projection shortcut is created before the residual
    branch.
    """
    stem = "initial_conv_relu_max_pool"
    if selective_kernels:
        # ResNet-D's deep stem; index 5 is an identity layer.
        yield "stem_conv1", "conv", f"{stem}/0/conv2d"
        yield "stem_bn1", "bn", f"{stem}/1/bn"
        yield "stem_conv2", "conv", f"{stem}/2/conv2d"
        yield "stem_bn2", "bn", f"{stem}/3/bn"
        yield "stem_conv3", "conv", f"{stem}/4/conv2d"
        yield "stem_bn3", "bn", f"{stem}/6/bn"
    else:
        yield "stem_conv", "conv", f"{stem}/0/conv2d"
        yield "stem_bn", "bn", f"{stem}/2/bn"
    for stage, blocks in enumerate(_ARCHITECTURES[depth][1]):
        for block in range(blocks):
            prefix = f"block{stage + 2}_{block + 1}"
            path = f"block_groups/{stage}/layers/{block}"
            if block == 0:
                # ResNet-D pools first (after a padding layer when it strides).
                first = (2 if stage else 1) if selective_kernels else 0
                yield f"{prefix}_shortcut_conv", "conv", f"{path}/projection_layers/{first}/conv2d"
                yield f"{prefix}_shortcut_bn", "bn", f"{path}/projection_layers/{first + 1}/bn"
            branch = f"{path}/conv_relu_dropblock_layers"  # DropBlock layers in between
            yield f"{prefix}_conv1", "conv", f"{branch}/0/conv2d"
            yield f"{prefix}_bn1", "bn", f"{branch}/1/bn"
            if selective_kernels:
                yield f"{prefix}_sk_conv", "conv", f"{branch}/3/conv2d_fixed_padding/conv2d"
                yield f"{prefix}_sk_bn", "bn", f"{branch}/3/batch_norm_relu/bn"
                yield f"{prefix}_sk_attention_conv", "conv", f"{branch}/3/conv2d_0"
                yield f"{prefix}_sk_attention_bn", "bn", f"{branch}/3/batch_norm_relu_1/bn"
                yield f"{prefix}_sk_logits_conv", "conv", f"{branch}/3/conv2d_1"
                last = 5
            else:
                yield f"{prefix}_conv2", "conv", f"{branch}/3/conv2d"
                yield f"{prefix}_bn2", "bn", f"{branch}/4/bn"
                last = 6
            yield f"{prefix}_conv3", "conv", f"{branch}/{last}/conv2d"
            yield f"{prefix}_bn3", "bn", f"{branch}/{last + 1}/bn"


class _Names:
    """Maps our layers' weights to a checkpoint's keys; one subclass per format.

    A subclass says where things are: `encoder_shape()` (selective kernels, width,
    depth), `encoder_keys(depth, selective_kernels)`, `head_layers()`,
    `head_key(layer, kind, weight)`, `has_supervised_head()`, `supervised_key(weight)`,
    `shape(key)` and `unused(keys)` (the model's variables outside `keys`); a key it
    lacks is its name after `_MISSING`. `layout` checks and gathers them.
    """

    def __init__(self, prefix):
        self.prefix = prefix

    def layout(self, reader):
        selective_kernels, width_multiplier, depth = self.encoder_shape()
        keys = {}
        for (name, weight), key in self.encoder_keys(depth, selective_kernels).items():
            keys["encoder", name, weight] = key
        num_layers = self.head_layers()
        for layer in range(num_layers):
            keys["projection_head", f"projection_head_dense{layer + 1}", "kernel"] = (
                self.head_key(layer, "dense", "kernel")
            )
            # The last layer's batch norm has no offset (the reference's
            # `center=use_bias` with no bias), as `projection_head` builds it.
            last = layer == num_layers - 1
            for weight in _WEIGHTS["bn"]:
                if not (last and weight == "beta"):
                    keys["projection_head", f"projection_head_bn{layer + 1}", weight] = (
                        self.head_key(layer, "bn", weight)
                    )
        if self.has_supervised_head():
            for weight in _WEIGHTS["linear"]:
                keys["supervised_head", "dense", weight] = self.supervised_key(weight)
        description = (
            f"SimCLR ResNet-{depth} {width_multiplier:g}x"
            f"{' with selective kernels' if selective_kernels else ''}"
        )
        missing = sorted(key[1:] for key in keys.values() if key.startswith(_MISSING))
        if missing:
            raise ValueError(
                f"{self.prefix!r} is not the {description} its first layers suggest: it "
                f"lacks {_some(missing)}. {_RELEASES}"
            )
        unused = self.unused(set(keys.values()))
        if unused:
            raise ValueError(
                f"{self.prefix!r} holds variables that a {description} does not have: "
                f"{_some(unused)}; it is another architecture. {_RELEASES}"
            )
        head_dims = tuple(
            self.shape(keys["projection_head", f"projection_head_dense{layer + 1}", "kernel"])[1]
            for layer in range(num_layers)
        )
        num_classes = None
        if ("supervised_head", "dense", "kernel") in keys:
            num_classes = self.shape(keys["supervised_head", "dense", "kernel"])[1]
        return _Layout(
            reader=reader,
            shapes={key: list(self.shape(key)) for key in keys.values()},
            prefix=self.prefix,
            depth=depth,
            width_multiplier=width_multiplier,
            sk_ratio=_sk_ratio(keys, self.shape, depth) if selective_kernels else 0.0,
            head_dims=head_dims,
            num_classes=num_classes,
            keys=keys,
        )

    def infer_encoder(self, stem_shape, third_conv_shape, num_convs):
        """(selective kernels, width multiplier, depth) from the stem's kernel shapes
        and the number of convolutions."""
        if stem_shape[:2] == [7, 7]:
            selective_kernels, channels, stem_convs, per_block = False, stem_shape[3], 1, 3
        elif stem_shape[:2] == [3, 3] and third_conv_shape and third_conv_shape[:2] == [3, 3]:
            selective_kernels, channels, stem_convs, per_block = True, third_conv_shape[3], 3, 5
        else:
            raise ValueError(
                f"{self.prefix!r} starts with a {stem_shape[0]}x{stem_shape[1]} convolution "
                f"followed by no 3x3 ones: not the ImageNet stem (7x7) nor SimCLRv2's deep "
                f"stem (three 3x3), e.g. a CIFAR-stem model, which was never released. {_RELEASES}"
            )
        if stem_shape[2] != 3:
            raise ValueError(
                f"{self.prefix!r} takes images of {stem_shape[2]} channels; the released "
                f"models take RGB. {_RELEASES}"
            )
        blocks, remainder = divmod(num_convs - stem_convs - 4, per_block)
        depth = _DEPTH_OF_BLOCKS.get(blocks) if not remainder else None
        if depth is None:
            raise ValueError(
                f"{self.prefix!r} has {num_convs} convolutions, which matches no ResNet-50, "
                f"-101 or -152 {'with' if selective_kernels else 'without'} selective kernels "
                f"(bottleneck blocks, a projection shortcut per stage). {_RELEASES}"
            )
        width_multiplier = channels / 64
        if width_multiplier == int(width_multiplier):
            width_multiplier = int(width_multiplier)
        return selective_kernels, width_multiplier, depth


class _Tf1Names(_Names):
    """Names of a TF1 checkpoint: variable scopes, numbered in creation order."""

    _SCOPES = ("base_model/", "head_contrastive/", "head_supervised/")

    def __init__(self, shapes, prefix, ema):
        super().__init__(prefix)
        self.scope = "ema_model/" if ema else ""
        if ema and not any(key.startswith("ema_model/base_model/") for key in shapes):
            raise ValueError(
                f"{prefix!r} holds no moving-average copy (ema_model/base_model/...). "
                "Convert without `ema`."
            )
        # The model's variables, named without the EMA scope: optimizer slots
        # (`.../Momentum`), the step counter and the other copy are left out.
        scopes = tuple(self.scope + scope for scope in self._SCOPES)
        self.shapes = {
            key[len(self.scope):]: shape
            for key, shape in shapes.items()
            if key.startswith(scopes) and key.rsplit("/", 1)[-1] in _LEAVES
        }
        self.convs = self._numbered("conv2d", "kernel")
        self.bns = self._numbered("batch_normalization", "gamma")
        if not self.convs or self.convs[0].startswith(_MISSING):
            raise _not_simclr(prefix, shapes)

    def _numbered(self, layer, weight):
        """The scopes `base_model/<layer>`, `<layer>_1`, ... in creation order."""
        pattern = re.compile(f"base_model/{layer}(?:_([0-9]+))?/{weight}")
        numbers = [pattern.fullmatch(key) for key in self.shapes]
        numbers = {int(match.group(1) or 0) for match in numbers if match}
        # Sorted by number: as strings, conv2d_10 would come before conv2d_2.
        scopes = []
        for number in range(max(numbers, default=-1) + 1):
            scope = f"base_model/{layer}_{number}" if number else f"base_model/{layer}"
            scopes.append(scope if number in numbers else _MISSING + scope)
        return scopes

    def shape(self, key):
        return self.shapes[key[len(self.scope):]]

    def encoder_shape(self):
        third = self.shapes.get(f"{self.convs[2]}/kernel") if len(self.convs) > 2 else None
        return self.infer_encoder(self.shapes[f"{self.convs[0]}/kernel"], third, len(self.convs))

    def encoder_keys(self, depth, selective_kernels):
        # The n-th convolution (batch norm) created is conv2d_n (batch_normalization_n).
        numbered = {"conv": iter(self.convs), "bn": iter(self.bns)}
        keys = {}
        for name, kind, _ in _encoder_layers(depth, selective_kernels):
            scope = next(numbered[kind], f"{_MISSING}base_model/<{kind} for {name}>")
            for weight in _WEIGHTS[kind]:
                keys[name, weight] = self._key(f"{scope}/{weight}")
        return keys

    def _key(self, name):
        if name.startswith(_MISSING) or name not in self.shapes:
            return _MISSING + name.lstrip(_MISSING)
        return self.scope + name

    def _head_scope(self, layer):
        if "head_contrastive/l_0/dense/kernel" in self.shapes:
            return "head_contrastive/l_0"
        return f"head_contrastive/nl_{layer}"

    def head_layers(self):
        if "head_contrastive/l_0/dense/kernel" in self.shapes:
            return 1
        layers = 0
        while f"head_contrastive/nl_{layers}/dense/kernel" in self.shapes:
            layers += 1
        return layers

    def head_key(self, layer, kind, weight):
        part = "dense" if kind == "dense" else "batch_normalization"
        return self._key(f"{self._head_scope(layer)}/{part}/{weight}")

    def has_supervised_head(self):
        return "head_supervised/linear_layer/dense/kernel" in self.shapes

    def supervised_key(self, weight):
        return self._key(f"head_supervised/linear_layer/dense/{weight}")

    def unused(self, used):
        return sorted(key for key in self.shapes if self.scope + key not in used)


class _Tf2Names(_Names):
    """Names of a TF2 checkpoint: attribute paths in its object graph."""

    def __init__(self, reader, prefix):
        super().__init__(prefix)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        try:
            graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
        except Exception as error:  # noqa: BLE001 (a protobuf DecodeError or a read error)
            raise ValueError(
                f"Cannot read the object graph of {prefix!r} ({_first_line(error)}): the "
                "checkpoint is truncated or corrupt. Download it again."
            ) from None
        self.graph = graph
        self.shapes = reader.get_variable_to_shape_map()
        self.model = self._find_model()
        if self.model is None:
            raise _not_simclr(prefix, self.shapes)

    def _children(self, node):
        return {child.local_name: child.node_id for child in self.graph.nodes[node].children}

    def _find_model(self):
        """The node of the reference's Keras model: the first, breadth-first from the
        root, with a `resnet_model` attribute."""
        queue, seen = [0], {0}
        while queue:
            node = queue.pop(0)
            children = self._children(node)
            if "resnet_model" in children:
                return node
            for child in children.values():
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return None

    def _node(self, path):
        node = self.model
        for attribute in path.split("/"):
            node = self._children(node).get(attribute)
            if node is None:
                return None
        return node

    def _key(self, path):
        node = self._node(path)
        if node is not None:
            for attribute in self.graph.nodes[node].attributes:
                if attribute.name == "VARIABLE_VALUE":
                    return attribute.checkpoint_key
        return f"{_MISSING}{path}"

    def shape(self, key):
        return self.shapes[key]

    def encoder_shape(self):
        stem = "resnet_model/initial_conv_relu_max_pool"
        if self._node(f"{stem}/0/conv2d/kernel") is None:
            raise _not_simclr(self.prefix, self.shapes)
        blocks = []
        for stage in range(4):
            layers = self._node(f"resnet_model/block_groups/{stage}/layers")
            blocks.append(len(self._children(layers)) if layers is not None else 0)
        selective_kernels = self._node(
            "resnet_model/block_groups/0/layers/0/conv_relu_dropblock_layers/3/conv2d_fixed_padding"
        ) is not None
        per_block, stem_convs = (5, 3) if selective_kernels else (3, 1)
        third = self._key(f"{stem}/4/conv2d/kernel")
        return self.infer_encoder(
            self.shape(self._key(f"{stem}/0/conv2d/kernel")),
            None if third.startswith(_MISSING) else self.shape(third),
            stem_convs + 4 + per_block * sum(blocks),
        )

    def encoder_keys(self, depth, selective_kernels):
        return {
            (name, weight): self._key(f"resnet_model/{path}/{weight}")
            for name, kind, path in _encoder_layers(depth, selective_kernels)
            for weight in _WEIGHTS[kind]
        }

    def head_layers(self):
        layers = self._node("_projection_head/linear_layers")
        return len(self._children(layers)) if layers is not None else 0

    def head_key(self, layer, kind, weight):
        part = "dense" if kind == "dense" else "bn_relu/bn"
        return self._key(f"_projection_head/linear_layers/{layer}/{part}/{weight}")

    def has_supervised_head(self):
        return self._node("supervised_head/linear_layer/dense/kernel") is not None

    def supervised_key(self, weight):
        return self._key(f"supervised_head/linear_layer/dense/{weight}")

    def unused(self, used):
        """Variables of the model's encoder and heads that no layer of ours reads."""
        found = set()
        queue = [
            node for node in (
                self._node(part) for part in ("resnet_model", "_projection_head", "supervised_head")
            ) if node is not None
        ]
        seen = set(queue)
        while queue:
            node = queue.pop()
            for attribute in self.graph.nodes[node].attributes:
                if attribute.name == "VARIABLE_VALUE":
                    found.add(attribute.checkpoint_key)
            for child in self._children(node).values():
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return sorted(found - used)


def _not_simclr(prefix, shapes):
    examples = ", ".join(sorted(key for key in shapes if key != _OBJECT_GRAPH_KEY)[:3])
    return ValueError(
        f"{prefix!r} is not a SimCLR checkpoint: it has no `base_model/conv2d/kernel` "
        "(TF1) and no `resnet_model` with an `initial_conv_relu_max_pool` in its object "
        f"graph (TF2); its variables are e.g. {examples or 'none'}. {_RELEASES}"
    )


def _some(names, count=3):
    more = f" and {len(names) - count} more" if len(names) > count else ""
    return ", ".join(names[:count]) + more


def _sk_ratio(keys, shape, depth):
    """A selective-kernel ratio that reproduces every attention width."""
    widths = []
    for stage, blocks in enumerate(_ARCHITECTURES[depth][1]):
        for block in range(blocks):
            layer = f"block{stage + 2}_{block + 1}_sk_attention_conv"
            kernel = shape(keys["encoder", layer, "kernel"])
            widths.append((kernel[2], kernel[3]))  # (filters, attention width)

    def reproduces(ratio):
        return all(max(int(f * ratio), _SK_MIN_DIM) == width for f, width in widths)

    candidates = [_SK_RATIO] + sorted({width / f for f, width in widths if width > _SK_MIN_DIM})
    for ratio in candidates:
        if reproduces(ratio):
            return ratio
    raise ValueError(
        "The selective-kernel attention widths (filters, width) "
        f"{sorted(set(widths))} follow no single ratio max(int(filters * ratio), "
        f"{_SK_MIN_DIM}), as the reference computes them. {_RELEASES}"
    )


# Building ----------------------------------------------------------------------


def _selector(path, ft_proj_selector, reference):
    num_layers = len(reference.head_dims)
    if ft_proj_selector is None:
        # SimCLRv2's fine-tuned releases live in `finetuned_1pct/`, `finetuned_10pct/`,
        # `finetuned_100pct/`; v1's `finetune_*` have no head and classify h.
        fine_tuned = re.search(r"(^|[/_])finetuned_", os.fspath(path)) is not None
        return 1 if fine_tuned and num_layers and reference.num_classes else 0
    if (
        isinstance(ft_proj_selector, bool)
        or not isinstance(ft_proj_selector, int)
        or not 0 <= ft_proj_selector <= num_layers
    ):
        raise ValueError(
            "`ft_proj_selector` is the projection-head layer the checkpoint's classifier "
            f"reads: 0 (h) to {num_layers} (the checkpoint's head has {num_layers} "
            f"layers). Received: ft_proj_selector={ft_proj_selector!r}"
        )
    return ft_proj_selector


def _build(reference, input_shape, selector):
    """The Keras models, and a function from (part, layer name) to the layer."""
    encoder = resnet(
        depth=reference.depth,
        width_multiplier=reference.width_multiplier,
        input_shape=input_shape,
        cifar_stem=False,
        sk_ratio=reference.sk_ratio,
    )
    feature_dim = encoder.output_shape[-1]
    head_dims = reference.head_dims
    projection_head = heads.projection_head(
        feature_dim,
        num_layers=len(head_dims),
        hidden_dim=head_dims[0] if len(head_dims) > 1 else None,
        output_dim=head_dims[-1] if head_dims else 128,
        name="projection_head",
    )
    probe_on_h = reference.num_classes is not None and selector == 0
    model = SimCLR(
        encoder,
        projection_head,
        num_classes=reference.num_classes if probe_on_h else None,
        probe_batch_norm=False,  # the reference's linear layer reads h as it is
    )
    network = None
    linear = None
    if reference.num_classes is not None:
        images = keras.Input(shape=encoder.inputs[0].shape[1:], name="images")
        features = encoder(images)
        if probe_on_h:
            logits = model.probe(features)
            linear = model.probe.get_layer("linear_probe_dense")
        else:
            features = heads.projection_head_layers(projection_head, selector)(features)
            linear = keras.layers.Dense(reference.num_classes, name="supervised_head")
            logits = linear(features)
        network = keras.Model(images, logits, name="classifier")
    parts = {"encoder": encoder.get_layer, "projection_head": projection_head.get_layer}
    parts["supervised_head"] = lambda name: linear
    return model, network, lambda part, name: parts[part](name)


def _assign(reference, layer_of):
    """Checks every shape, then copies the tensors into the layers' variables."""
    targets = []
    mismatches = []
    for (part, name, weight), key in reference.keys.items():
        variable = getattr(layer_of(part, name), weight)
        shape = reference.shapes[key]
        if list(variable.shape) != shape:
            mismatches.append(f"{key} is {shape}, layer {name!r} has {list(variable.shape)}")
        targets.append((variable, key))
    if mismatches:
        raise ValueError(
            f"{reference.prefix!r} does not fit the network its shapes describe: "
            f"{'; '.join(mismatches[:3])}. {_RELEASES}"
        )
    for variable, key in targets:
        try:
            value = reference.reader.get_tensor(key)
        except tf.errors.OpError as error:
            raise ValueError(
                f"Cannot read {key} from {reference.prefix!r} ({_first_line(error)}): the "
                "checkpoint is truncated or corrupt. Download it again."
            ) from None
        variable.assign(value.astype(variable.dtype))
