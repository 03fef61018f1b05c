"""ResNet v1 encoders for SimCLR, built as functional Keras models.

`ResNet` is the encoder: a functional model whose configuration is its constructor
arguments, so a saved encoder knows its architecture; `resnet()` is its function form.

The encoder f maps images to the representation h (Section 2.1 of Chen et al.,
2020). The architecture follows the reference implementation
(google-research/simclr, `tf2/resnet.py`), itself the TPU ResNet v1:

- convolution kernels without bias, variance-scaling initialised; strided
  convolutions pad explicitly ("fixed padding"), so the output does not depend on
  whether the input side is even or odd;
- batch norm with momentum 0.9 and epsilon 1e-5; the last batch norm of every
  residual block starts with gamma = 0, so each block starts as the identity;
- the stride of a bottleneck block sits on its 3x3 convolution ("ResNet v1.5");
- the first block of every stage has a projection shortcut (1x1 convolution +
  batch norm), also when the shape does not change (the first stage of
  ResNet-18/34), as the reference does;
- the CIFAR stem (3x3 stride-1 convolution, no max-pool) for small images
  (Appendix B.9), optionally at stride 2 (`stem_stride=2`): every later layer then
  works at half the resolution, about 3x the throughput on CPUs;
- SimCLRv2's selective kernels (Chen et al., 2020b, Section 3) with the ResNet-D
  stem and average-pooled projection shortcuts.

Layer names are stable: `stem_conv`, `stem_bn`, `block3_2_conv1`, `block3_2_bn1`,
`block3_1_shortcut_bn`, `block4_1_sk_bn`, ... Every batch-norm layer, and so every
batch-norm variable path (`block3_2_bn1/gamma`), contains `bn`.
"""

import numbers

import keras
from keras import ops

from keras_simclr import checks
from keras_simclr import distribute

# The reference's BATCH_NORM_DECAY and BATCH_NORM_EPSILON.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5

# depth -> (block type, number of blocks in each of the four stages).
_ARCHITECTURES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
_STAGE_FILTERS = (64, 128, 256, 512)
_BOTTLENECK_EXPANSION = 4
# The reference's `min_dim` of the selective-kernel attention.
_SK_MIN_DIM = 32


@keras.saving.register_keras_serializable(package="keras_simclr")
class ResNet(keras.Model):
    """A ResNet v1 encoder that maps images to the representation h.

    SimCLR uses a ResNet-50 as the encoder f and takes its global-average-pooled
    output as the representation h (Chen et al., 2020, Section 2.1); wider
    networks (2x, 4x) and, in SimCLRv2, deeper ones with selective kernels
    (Chen et al., 2020b, Section 3) improve it. The layers follow the reference
    implementation (google-research/simclr `tf2/resnet.py`): fixed padding for
    strided convolutions, batch norm with momentum 0.9 and epsilon 1e-5, the last
    batch norm of every residual block initialised to zero, the bottleneck
    stride on the 3x3 convolution. For images of 32 pixels or less the stem is
    a 3x3 stride-1 convolution without max-pooling (Appendix B.9). With
    `synchronized_bn=True` the batch-norm statistics are computed over the
    global batch of all replicas ("global BN", Section 2.2).

    The model is functional (its layers can be inspected, reused and fine-tuned
    like any functional model's) and knows what it is: `get_config()` returns its
    constructor arguments, so a saved encoder, alone or inside a `SimCLR` model,
    is rebuilt from its depth, width, stem and selective-kernel ratio, and the
    job compares them to refuse resuming a run of another architecture. It takes
    images in [0, 1] (no other preprocessing) and works under mixed-precision
    policies (h then comes out in the compute dtype).

    Args:
        depth: int, one of 18, 34 (basic blocks), 50, 101, 152, 200 (bottleneck
            blocks). Defaults to `50`.
        width_multiplier: positive number scaling every layer's channels
            (`max(1, int(64 * width_multiplier))` in the stem, and so on).
            The paper uses 1, 2 and 4; fractions such as 0.25 make small
            encoders for CPUs. Defaults to `1`.
        input_shape: `(height, width, channels)` of the images; the spatial
            sides may be `None`. Any number of channels works (1 for
            Fashion-MNIST). Defaults to `(224, 224, 3)`.
        cifar_stem: bool or `None`. `True` uses the CIFAR stem (3x3 stride-1
            convolution, no max-pool), `False` the ImageNet stem (7x7 stride-2
            convolution and 3x3 stride-2 max-pool). `None` chooses the CIFAR
            stem when both sides of `input_shape` are known and at most 32;
            the configuration records the choice. Defaults to `None`.
        stem_stride: 1 or 2, the stride of the CIFAR stem's convolution. 1 is
            the paper's (Appendix B.9); 2 halves the resolution of every later
            layer (a quarter of their operations: on 28-pixel images the stages
            work at 14, 7, 4 and 2 pixels), a budget choice for CPUs. The
            ImageNet stem has its own strides and takes only 1. Defaults to
            `1`.
        sk_ratio: float in [0, 1]. When positive, the 3x3 convolutions of the
            bottleneck blocks become selective-kernel convolutions whose
            attention has `max(int(filters * sk_ratio), 32)` channels, the
            ImageNet stem becomes three 3x3 convolutions and the projection
            shortcuts average-pool before their 1x1 convolution (ResNet-D),
            as in SimCLRv2 (which uses 0.0625). Defaults to `0.0`.
        synchronized_bn: bool, whether batch norm aggregates its statistics
            across all replicas of a `tf.distribute` strategy. Defaults to
            `False`.
        name: name of the model. Defaults to e.g. `"resnet50_1x"`.
        dtype: the dtype policy of the layers (e.g. `"mixed_bfloat16"`), or
            `None` for the global policy when the model is built; the
            configuration records the policy used, so a saved encoder computes
            as it did when it was saved. Defaults to `None`.
        **kwargs: `trainable`, as for any Keras model.

    Call arguments:
        images: float tensor of shape `(batch,) + input_shape`.
        training: bool, whether batch norm uses the batch's statistics (and
            updates its moving ones).

    Returns (when called):
        h of shape `(batch, channels)`, where channels is
        `512 * width_multiplier` for ResNet-18/34 and `2048 * width_multiplier`
        for deeper networks.

    Example:

    >>> from keras_simclr.models import ResNet
    >>> encoder = ResNet(depth=18, width_multiplier=0.25, input_shape=(32, 32, 3))
    >>> encoder.output_shape
    (None, 128)
    >>> encoder.get_config()["cifar_stem"]
    True
    """

    def __init__(
        self,
        depth=50,
        width_multiplier=1,
        input_shape=(224, 224, 3),
        cifar_stem=None,
        sk_ratio=0.0,
        synchronized_bn=False,
        name=None,
        dtype=None,
        stem_stride=1,
        **kwargs,
    ):
        if (
            isinstance(depth, bool)
            or not isinstance(depth, numbers.Integral)
            or depth not in _ARCHITECTURES
        ):
            raise ValueError(
                f"`depth` must be one of {sorted(_ARCHITECTURES)}. Received: depth={depth!r}"
            )
        depth = int(depth)
        if (
            isinstance(width_multiplier, bool)
            or not isinstance(width_multiplier, numbers.Real)
            or not width_multiplier > 0
        ):
            raise ValueError(
                "`width_multiplier` must be a number > 0 (e.g. 1, 2, 4, or 0.25 for "
                f"a small encoder). Received: width_multiplier={width_multiplier}"
            )
        input_shape = _validate_input_shape(input_shape)
        if cifar_stem not in (None, True, False):
            raise ValueError(
                "`cifar_stem` must be True, False or None (choose from the input "
                f"size). Received: cifar_stem={cifar_stem}"
            )
        if (
            isinstance(sk_ratio, bool)
            or not isinstance(sk_ratio, numbers.Real)
            or not 0.0 <= sk_ratio <= 1.0
        ):
            raise ValueError(
                "`sk_ratio` must be a number in [0, 1] (0 disables selective "
                f"kernels; SimCLRv2 uses 0.0625). Received: sk_ratio={sk_ratio}"
            )
        synchronized_bn = checks.boolean("synchronized_bn", synchronized_bn)
        if cifar_stem is None:
            height, width = input_shape[0], input_shape[1]
            cifar_stem = height is not None and width is not None and max(height, width) <= 32
        if isinstance(stem_stride, bool) or stem_stride not in (1, 2):
            raise ValueError(
                "`stem_stride` must be 1 (the paper's CIFAR stem) or 2 (the CIFAR stem at "
                f"half the resolution). Received: stem_stride={stem_stride!r}"
            )
        stem_stride = int(stem_stride)
        if stem_stride != 1 and not cifar_stem:
            raise ValueError(
                "`stem_stride=2` applies to the CIFAR stem (images of at most 32 pixels, or "
                "cifar_stem=True); the ImageNet stem already has strides 2 and 2. Pass "
                f"stem_stride=1 or cifar_stem=True. Received: stem_stride={stem_stride}, "
                f"input_shape={input_shape}, cifar_stem={cifar_stem}"
            )
        if name is None:
            name = f"resnet{depth}_{width_multiplier:g}x" + ("_sk" if sk_ratio > 0 else "")
        # The layers carry the policy, as in a functional model; recorded resolved, so
        # that loading under another global policy computes as the saved model did.
        policy = keras.dtype_policies.get(
            dtype if dtype is not None else keras.config.dtype_policy()
        )

        builder = _Builder(sk_ratio=sk_ratio, synchronized_bn=synchronized_bn, dtype=policy)
        block_type, stage_blocks = _ARCHITECTURES[depth]
        images = keras.Input(shape=input_shape, name="images")
        x = builder.stem(images, _scaled(64, width_multiplier), cifar_stem, stem_stride)
        for stage, (filters, num_blocks) in enumerate(zip(_STAGE_FILTERS, stage_blocks)):
            filters = _scaled(filters, width_multiplier)
            for block in range(num_blocks):
                # Stage numbers follow the ResNet paper's conv2_x..conv5_x; stages after the
                # first halve the resolution in their first block.
                prefix = f"block{stage + 2}_{block + 1}"
                strides = 2 if stage > 0 and block == 0 else 1
                if block_type == "basic":
                    x = builder.basic_block(x, filters, strides, block == 0, prefix)
                else:
                    x = builder.bottleneck_block(x, filters, strides, block == 0, prefix)
        h = keras.layers.GlobalAveragePooling2D(
            data_format="channels_last", dtype=policy, name="avg_pool"
        )(x)
        super().__init__(images, h, name=name, **kwargs)
        self.depth = depth
        self.width_multiplier = width_multiplier
        self.cifar_stem = cifar_stem
        self.stem_stride = stem_stride
        self.sk_ratio = sk_ratio
        self.synchronized_bn = synchronized_bn
        self._layers_dtype_policy = policy

    def get_config(self):
        # The constructor's arguments, not the functional graph: the architecture
        # is rebuilt by the code that defines it, and the file says what it holds.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "width_multiplier": self.width_multiplier,
            "input_shape": tuple(self.inputs[0].shape[1:]),
            "cifar_stem": self.cifar_stem,
            "stem_stride": self.stem_stride,
            "sk_ratio": self.sk_ratio,
            "synchronized_bn": self.synchronized_bn,
            "dtype": self._layers_dtype_policy.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def resnet(
    depth=50,
    width_multiplier=1,
    input_shape=(224, 224, 3),
    cifar_stem=None,
    sk_ratio=0.0,
    synchronized_bn=False,
    name=None,
    stem_stride=1,
):
    """Builds a ResNet v1 encoder that maps images to the representation h.

    The function form of `ResNet` (see it for the architecture, after Chen et al.,
    2020, Section 2.1 and Appendix B.9, and SimCLRv2's selective kernels): the
    same arguments, the same model.

    Args:
        depth: int, one of 18, 34, 50, 101, 152, 200. Defaults to `50`.
        width_multiplier: positive number scaling every layer's channels.
            Defaults to `1`.
        input_shape: `(height, width, channels)` of the images; the spatial
            sides may be `None`. Defaults to `(224, 224, 3)`.
        cifar_stem: bool, or `None` to choose the CIFAR stem for images of at
            most 32 pixels. Defaults to `None`.
        sk_ratio: float in [0, 1], the selective-kernel ratio; 0 disables them.
            Defaults to `0.0`.
        synchronized_bn: bool, batch-norm statistics over all replicas.
            Defaults to `False`.
        name: name of the model. Defaults to e.g. `"resnet50_1x"`.
        stem_stride: 1 or 2, the stride of the CIFAR stem's convolution (2: every
            later layer at half the resolution). Defaults to `1`.

    Returns:
        A `ResNet`: a functional `keras.Model` mapping images of shape
        `(batch,) + input_shape` to h of shape `(batch, channels)`, whose
        `get_config()` is these arguments.

    Example:

    >>> from keras_simclr.models import resnet
    >>> encoder = resnet(depth=18, width_multiplier=0.25, input_shape=(32, 32, 3))
    >>> encoder.output_shape
    (None, 128)
    """
    return ResNet(
        depth=depth,
        width_multiplier=width_multiplier,
        input_shape=input_shape,
        cifar_stem=cifar_stem,
        sk_ratio=sk_ratio,
        synchronized_bn=synchronized_bn,
        name=name,
        stem_stride=stem_stride,
    )


def _scaled(channels, width_multiplier):
    return max(1, int(channels * width_multiplier))


def _validate_input_shape(input_shape):
    message = (
        "`input_shape` must be (height, width, channels) with positive integer "
        "channels and positive (or None) height and width, e.g. (32, 32, 3). "
        f"Received: input_shape={input_shape}"
    )
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(message)
    for index, side in enumerate(input_shape):
        if side is None and index < 2:
            continue
        if isinstance(side, bool) or not isinstance(side, numbers.Integral) or side <= 0:
            raise ValueError(message)
    return tuple(None if side is None else int(side) for side in input_shape)


@keras.saving.register_keras_serializable(package="keras_simclr")
class SumBranches(keras.layers.Layer):
    """Splits the channels into `num_branches` equal groups and adds them up.

    The "fuse" step of a selective-kernel convolution: the branches are stored
    side by side in the channels of one convolution's output, as the reference
    computes them with a single convolution of twice the width.
    """

    def __init__(self, num_branches=2, **kwargs):
        super().__init__(**kwargs)
        self.num_branches = num_branches

    def call(self, inputs):
        branches = ops.split(inputs, self.num_branches, axis=-1)
        total = branches[0]
        for branch in branches[1:]:
            total = total + branch
        return total

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] // self.num_branches,)

    def get_config(self):
        config = super().get_config()
        config.update({"num_branches": self.num_branches})
        return config


@keras.saving.register_keras_serializable(package="keras_simclr")
class SelectBranches(keras.layers.Layer):
    """Mixes channel-stacked branches with a softmax over the branches.

    The "select" step of a selective-kernel convolution. Called on
    `[features, logits]`: `features` holds the branches side by side in its
    channels, `logits` (one spatial position) the attention logits in the same
    layout; each channel of the output is the softmax-weighted sum of that
    channel across the branches.
    """

    def __init__(self, num_branches=2, **kwargs):
        super().__init__(**kwargs)
        self.num_branches = num_branches

    def call(self, inputs):
        features, logits = inputs
        branches = ops.stack(ops.split(features, self.num_branches, axis=-1), axis=0)
        logits = ops.stack(ops.split(logits, self.num_branches, axis=-1), axis=0)
        return ops.sum(branches * ops.softmax(logits, axis=0), axis=0)

    def compute_output_shape(self, input_shape):
        features_shape = input_shape[0]
        return tuple(features_shape[:-1]) + (features_shape[-1] // self.num_branches,)

    def get_config(self):
        config = super().get_config()
        config.update({"num_branches": self.num_branches})
        return config


# Files saved before these layers had public names refer to the private ones.
for _old_name, _layer in (("_SumBranches", SumBranches), ("_SelectBranches", SelectBranches)):
    keras.saving.get_custom_objects()[f"keras_simclr>{_old_name}"] = _layer


class _Builder:
    """Adds the reference's layers to a functional graph, with shared settings."""

    def __init__(self, sk_ratio, synchronized_bn, dtype):
        self.sk_ratio = sk_ratio
        self.synchronized_bn = synchronized_bn
        self.dtype = dtype

    def conv(self, x, filters, kernel_size, strides, name):
        if strides > 1:
            # Fixed padding: the padding depends on the kernel only, not on the
            # input size, so odd and even inputs are treated alike.
            pad_total = kernel_size - 1
            if pad_total > 0:
                pad_begin = pad_total // 2
                padding = (pad_begin, pad_total - pad_begin)
                x = keras.layers.ZeroPadding2D(
                    (padding, padding),
                    data_format="channels_last",
                    dtype=self.dtype,
                    name=f"{name}_pad",
                )(x)
            padding_mode = "valid"
        else:
            padding_mode = "same"
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding_mode,
            use_bias=False,
            kernel_initializer="variance_scaling",
            data_format="channels_last",
            dtype=self.dtype,
            name=name,
        )(x)

    def batch_norm(self, x, name, zero_init=False):
        return keras.layers.BatchNormalization(
            axis=-1,
            momentum=_BN_MOMENTUM,
            epsilon=_BN_EPSILON,
            gamma_initializer="zeros" if zero_init else "ones",
            synchronized=distribute.synchronized_batch_norm(self.synchronized_bn),
            dtype=self.dtype,
            name=name,
        )(x)

    def conv_bn_relu(self, x, filters, kernel_size, strides, name, suffix=""):
        x = self.conv(x, filters, kernel_size, strides, f"{name}_conv{suffix}")
        x = self.batch_norm(x, f"{name}_bn{suffix}")
        return keras.layers.ReLU(dtype=self.dtype, name=f"{name}_relu{suffix}")(x)

    def stem(self, images, filters, cifar_stem, stride=1):
        if cifar_stem:
            # Appendix B.9: on 32x32 images the 7x7 stride-2 convolution and the
            # max-pool discard most of the resolution.
            return self.conv_bn_relu(images, filters, 3, stride, "stem")
        if self.sk_ratio > 0:
            # SimCLRv2 pairs selective kernels with the ResNet-D deep stem.
            x = self.conv_bn_relu(images, max(1, filters // 2), 3, 2, "stem", "1")
            x = self.conv_bn_relu(x, max(1, filters // 2), 3, 1, "stem", "2")
            x = self.conv_bn_relu(x, filters, 3, 1, "stem", "3")
        else:
            x = self.conv_bn_relu(images, filters, 7, 2, "stem")
        # The reference max-pools with SAME padding rather than fixed padding.
        return keras.layers.MaxPooling2D(
            3,
            strides=2,
            padding="same",
            data_format="channels_last",
            dtype=self.dtype,
            name="stem_pool",
        )(x)

    def shortcut(self, x, filters, strides, prefix):
        if self.sk_ratio > 0:
            # ResNet-D: average-pool, then a stride-1 projection, so the
            # shortcut sees every input position.
            if strides > 1:
                x = keras.layers.ZeroPadding2D(
                    ((0, 1), (0, 1)),
                    data_format="channels_last",
                    dtype=self.dtype,
                    name=f"{prefix}_shortcut_pad",
                )(x)
            x = keras.layers.AveragePooling2D(
                2,
                strides=strides,
                padding="same" if strides == 1 else "valid",
                data_format="channels_last",
                dtype=self.dtype,
                name=f"{prefix}_shortcut_pool",
            )(x)
            x = self.conv(x, filters, 1, 1, f"{prefix}_shortcut_conv")
        else:
            x = self.conv(x, filters, 1, strides, f"{prefix}_shortcut_conv")
        return self.batch_norm(x, f"{prefix}_shortcut_bn")

    def selective_kernel_conv(self, x, filters, strides, prefix):
        # One convolution of twice the width holds both branches side by side,
        # exactly as the reference's SK_Conv2D computes them.
        x = self.conv(x, 2 * filters, 3, strides, f"{prefix}_sk_conv")
        x = self.batch_norm(x, f"{prefix}_sk_bn")
        x = keras.layers.ReLU(dtype=self.dtype, name=f"{prefix}_sk_relu")(x)
        fused = SumBranches(2, dtype=self.dtype, name=f"{prefix}_sk_fuse")(x)
        fused = keras.layers.GlobalAveragePooling2D(
            data_format="channels_last", keepdims=True, dtype=self.dtype, name=f"{prefix}_sk_pool"
        )(fused)
        attention_dim = max(int(filters * self.sk_ratio), _SK_MIN_DIM)
        fused = self.conv(fused, attention_dim, 1, 1, f"{prefix}_sk_attention_conv")
        fused = self.batch_norm(fused, f"{prefix}_sk_attention_bn")
        fused = keras.layers.ReLU(dtype=self.dtype, name=f"{prefix}_sk_attention_relu")(fused)
        logits = self.conv(fused, 2 * filters, 1, 1, f"{prefix}_sk_logits_conv")
        return SelectBranches(2, dtype=self.dtype, name=f"{prefix}_sk_select")([x, logits])

    def basic_block(self, x, filters, strides, use_projection, prefix):
        shortcut = self.shortcut(x, filters, strides, prefix) if use_projection else x
        # The reference uses selective kernels only in bottleneck blocks.
        x = self.conv_bn_relu(x, filters, 3, strides, prefix, "1")
        x = self.conv(x, filters, 3, 1, f"{prefix}_conv2")
        x = self.batch_norm(x, f"{prefix}_bn2", zero_init=True)
        x = keras.layers.Add(dtype=self.dtype, name=f"{prefix}_add")([x, shortcut])
        return keras.layers.ReLU(dtype=self.dtype, name=f"{prefix}_out")(x)

    def bottleneck_block(self, x, filters, strides, use_projection, prefix):
        out_filters = _BOTTLENECK_EXPANSION * filters
        shortcut = self.shortcut(x, out_filters, strides, prefix) if use_projection else x
        x = self.conv_bn_relu(x, filters, 1, 1, prefix, "1")
        if self.sk_ratio > 0:
            x = self.selective_kernel_conv(x, filters, strides, prefix)
        else:
            x = self.conv_bn_relu(x, filters, 3, strides, prefix, "2")
        x = self.conv(x, out_filters, 1, 1, f"{prefix}_conv3")
        x = self.batch_norm(x, f"{prefix}_bn3", zero_init=True)
        x = keras.layers.Add(dtype=self.dtype, name=f"{prefix}_add")([x, shortcut])
        return keras.layers.ReLU(dtype=self.dtype, name=f"{prefix}_out")(x)
