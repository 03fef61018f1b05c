"""What a released checkpoint holds: its architecture and a key for every weight.

`Names` is the part both formats share: from the answers of a format's subclass
(`tf1.Tf1Names`, `tf2.Tf2Names`) it infers the architecture from the tensors'
shapes (depth, width, selective kernels, head, classifier), checks that every
weight of the network it describes is present and nothing else is, and gathers a
`Layout`.
"""

import dataclasses

from keras_simclr.models.resnet import _ARCHITECTURES
from keras_simclr.models.resnet import _SK_MIN_DIM

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Marks, in front of a name, a key the checkpoint lacks.
MISSING = "?"
# The weights of each kind of layer, named as in both formats.
WEIGHTS = {
    "conv": ("kernel",),
    "bn": ("gamma", "beta", "moving_mean", "moving_variance"),
    "linear": ("kernel", "bias"),
}
# Total bottleneck blocks -> depth, for the depths the reference released.
_RELEASED_DEPTHS = (50, 101, 152)
_DEPTH_OF_BLOCKS = {sum(_ARCHITECTURES[d][1]): d for d in _RELEASED_DEPTHS}
# SimCLRv2's selective-kernel ratio; any ratio that gives the same attention widths
# builds the same network.
_SK_RATIO = 0.0625
# Ends every message about a checkpoint the converter cannot read.
RELEASES = (
    "The converter reads the official SimCLR v1/v2 ImageNet ResNets: TF1 checkpoints "
    "(gs://simclr-checkpoints/...) and TF2 SavedModels (gs://simclr-checkpoints-tf2/...)."
)


@dataclasses.dataclass(frozen=True)
class Layout:
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


def first_line(error):
    """The first line of `error`'s message, to quote inside one of ours."""
    message = getattr(error, "message", None) or str(error)
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__


def encoder_layers(depth, selective_kernels):
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


class Names:
    """Maps our layers' weights to a checkpoint's keys; one subclass per format.

    A subclass says where things are: `encoder_shape()` (selective kernels, width,
    depth), `encoder_keys(depth, selective_kernels)`, `head_layers()`,
    `head_key(layer, kind, weight)`, `has_supervised_head()`, `supervised_key(weight)`,
    `shape(key)` and `unused(keys)` (the model's variables outside `keys`); a key it
    lacks is its name after `MISSING`. `layout` checks and gathers them.
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
            for weight in WEIGHTS["bn"]:
                if not (last and weight == "beta"):
                    keys["projection_head", f"projection_head_bn{layer + 1}", weight] = (
                        self.head_key(layer, "bn", weight)
                    )
        if self.has_supervised_head():
            for weight in WEIGHTS["linear"]:
                keys["supervised_head", "dense", weight] = self.supervised_key(weight)
        description = (
            f"SimCLR ResNet-{depth} {width_multiplier:g}x"
            f"{' with selective kernels' if selective_kernels else ''}"
        )
        missing = sorted(key[1:] for key in keys.values() if key.startswith(MISSING))
        if missing:
            raise ValueError(
                f"{self.prefix!r} is not the {description} its first layers suggest: it "
                f"lacks {_some(missing)}. {RELEASES}"
            )
        unused = self.unused(set(keys.values()))
        if unused:
            raise ValueError(
                f"{self.prefix!r} holds variables that a {description} does not have: "
                f"{_some(unused)}; it is another architecture. {RELEASES}"
            )
        head_dims = tuple(
            self.shape(keys["projection_head", f"projection_head_dense{layer + 1}", "kernel"])[1]
            for layer in range(num_layers)
        )
        num_classes = None
        if ("supervised_head", "dense", "kernel") in keys:
            num_classes = self.shape(keys["supervised_head", "dense", "kernel"])[1]
        return Layout(
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
                f"stem (three 3x3), e.g. a CIFAR-stem model, which was never released. {RELEASES}"
            )
        if stem_shape[2] != 3:
            raise ValueError(
                f"{self.prefix!r} takes images of {stem_shape[2]} channels; the released "
                f"models take RGB. {RELEASES}"
            )
        blocks, remainder = divmod(num_convs - stem_convs - 4, per_block)
        depth = _DEPTH_OF_BLOCKS.get(blocks) if not remainder else None
        if depth is None:
            raise ValueError(
                f"{self.prefix!r} has {num_convs} convolutions, which matches no ResNet-50, "
                f"-101 or -152 {'with' if selective_kernels else 'without'} selective kernels "
                f"(bottleneck blocks, a projection shortcut per stage). {RELEASES}"
            )
        width_multiplier = channels / 64
        if width_multiplier == int(width_multiplier):
            width_multiplier = int(width_multiplier)
        return selective_kernels, width_multiplier, depth


def not_simclr(prefix, shapes):
    examples = ", ".join(sorted(key for key in shapes if key != OBJECT_GRAPH_KEY)[:3])
    return ValueError(
        f"{prefix!r} is not a SimCLR checkpoint: it has no `base_model/conv2d/kernel` "
        "(TF1) and no `resnet_model` with an `initial_conv_relu_max_pool` in its object "
        f"graph (TF2); its variables are e.g. {examples or 'none'}. {RELEASES}"
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
        f"{_SK_MIN_DIM}), as the reference computes them. {RELEASES}"
    )
