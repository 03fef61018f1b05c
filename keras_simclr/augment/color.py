"""Colour distortion: colour jitter in a random order, and colour drop.

SimCLR's colour distortion (Section 3, Appendix A): brightness, contrast, saturation
and hue in a random order per example (`ColorJitter`, p = 0.8), then conversion to
grayscale (`RandomColorDrop`, p = 0.2). Without it, the crops of an image share
their colour histogram, which alone nearly solves the contrastive task (Section 3,
Figure 6).
"""

import math

from keras_simclr.augment.base import _FLOAT
from keras_simclr.augment.base import _broadcast
from keras_simclr.augment.base import _channels_last
from keras_simclr.augment.base import _ImageLayer
from keras_simclr.augment.base import _register
from keras_simclr import checks

_JITTER_IMPLS = ("simclrv1", "simclrv2")

# Colour-jitter operation codes, in the order of the reference's fixed-order jitter.
_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE, _IDENTITY = 0, 1, 2, 3, 4


def _jitter_kernel(
    backend,
    planes,
    gain,
    mean_weight,
    offset,
    saturation,
    hue,
    saturate,
    rotate,
    original=None,
    keep=None,
    channels_last=False,
):
    """One step of the colour jitter, per example: brightness or contrast, then
    saturation and/or hue, in one pass over the batch.

    The first part is `clip(gain * x + mean_weight * mean + offset)` with `mean`
    the example's channel means: multiplicative brightness (`gain`), additive
    brightness (`offset`, "simclrv1"), `tf.image.adjust_contrast` (`gain` = factor,
    `mean_weight` = 1 - factor), or the identity (1, 0, 0). Then
    `tf.image.adjust_saturation` and `adjust_hue`, which both keep each pixel's
    maximum channel (the HSV value) and act on separate HSV coordinates, so they
    commute: saturation scales every channel's distance to the maximum, capped so
    that the minimum stays >= 0; the hue rotation is closed form, channel n
    becoming `max - chroma * clip(min(k, 4 - k), 0, 1)` with `k = (n + hue') mod 6`
    (n = 5, 3, 1 for R, G, B), which avoids a full HSV round trip. Examples with
    the identity and neither flag keep their pixels bit for bit; with `original`,
    the examples not in `keep` return `original` instead.
    """
    np_ = backend.numpy
    mean = np_.mean(planes, axis=(2, 3), keepdims=True)
    planes = np_.clip(
        _broadcast(gain) * planes
        + _broadcast(mean_weight) * mean
        + _broadcast(offset),
        0.0,
        1.0,
    )
    result = planes
    if planes.shape[1] == 3:
        red, green, blue = planes[:, 0], planes[:, 1], planes[:, 2]
        value = np_.maximum(np_.maximum(red, green), blue)
        chroma = value - np_.minimum(np_.minimum(red, green), blue)
        safe_chroma = np_.where(chroma > 0.0, chroma, np_.ones_like(chroma))
        per_pixel = (slice(None), None, None)
        limit = value / safe_chroma
        saturation_gain = np_.where(
            saturate[per_pixel],
            np_.minimum(saturation[per_pixel], limit),
            np_.ones_like(limit),
        )
        saturated = [
            saturation_gain * channel + (1.0 - saturation_gain) * value
            for channel in (red, green, blue)
        ]
        # The hue angle is the same before and after the saturation change.
        sector = np_.where(
            value == red,
            (green - blue) / safe_chroma,
            np_.where(
                value == green,
                (blue - red) / safe_chroma + 2.0,
                (red - green) / safe_chroma + 4.0,
            ),
        )
        sector = sector + (6.0 * hue)[per_pixel]
        chroma = saturation_gain * chroma
        channels = []
        for channel_offset, channel in zip((5.0, 3.0, 1.0), saturated):
            position = sector + channel_offset
            position = position - 6.0 * np_.floor(position / 6.0)
            ramp = np_.clip(np_.minimum(position, 4.0 - position), 0.0, 1.0)
            channels.append(
                np_.where(rotate[per_pixel], value - chroma * ramp, channel)
            )
        result = np_.where(
            _broadcast(np_.logical_or(saturate, rotate)),
            np_.stack(channels, axis=1),
            planes,
        )
    if original is not None:
        result = np_.where(_broadcast(keep), result, original)
    return _channels_last(backend, result, channels_last)


def _jitter_steps(backend, transformation, impl, color=True):
    """Turns per-example operation orders into three batch-wide jitter steps.

    Brightness and contrast split each example's order into three gaps; saturation
    and hue fall into some of them and commute with each other. A step applies
    brightness or contrast, then the saturation / hue of the following gap: so an
    example whose order starts with saturation or hue spends its first step on
    those alone, and any of the 24 orders fits in three steps. Without `color`
    (1-channel images, where saturation and hue do nothing) two steps suffice.

    Returns:
        Tuples `(gain, mean_weight, offset, saturation, hue, saturate, rotate)` of
        `(B,)` tensors, the arguments of `_jitter_kernel`, one per step.
    """
    np_ = backend.numpy
    order = backend.cast(transformation["order"], "int32")
    positions = np_.argsort(order, axis=1)
    brightness_at = positions[:, _BRIGHTNESS]
    contrast_at = positions[:, _CONTRAST]
    brightness_first = brightness_at < contrast_at
    first = np_.minimum(brightness_at, contrast_at)
    second = np_.maximum(brightness_at, contrast_at)

    def gap(position):
        return np_.where(position < first, 0, np_.where(position < second, 1, 2))

    saturation_gap = gap(positions[:, _SATURATION])
    hue_gap = gap(positions[:, _HUE])
    brightness = backend.cast(transformation["brightness"], _FLOAT)
    contrast = backend.cast(transformation["contrast"], _FLOAT)
    ones = np_.ones_like(contrast)
    zeros = np_.zeros_like(contrast)
    if impl == "simclrv1":
        brightness_step = (ones, zeros, brightness)
    else:
        brightness_step = (brightness, zeros, zeros)
    contrast_step = (contrast, 1.0 - contrast, zeros)
    identity = (ones, zeros, zeros)
    affine = [
        tuple(
            np_.where(is_brightness, b, c)
            for b, c in zip(brightness_step, contrast_step)
        )
        for is_brightness in (brightness_first, np_.logical_not(brightness_first))
    ]
    if color:
        # Examples with saturation or hue before both brightness and contrast.
        leading = np_.logical_or(saturation_gap == 0, hue_gap == 0)
        shift = backend.cast(leading, "int32")
    else:
        shift = np_.zeros_like(first)
    saturation = backend.cast(transformation["saturation"], _FLOAT)
    hue = backend.cast(transformation["hue"], _FLOAT)
    steps = []
    for index in range(3 if color else 2):
        # Step `index` runs the example's affine number `index - shift` (the
        # identity when there is none) and then the gap that follows it.
        number = index - shift
        parameters = tuple(
            np_.where(
                number == 0, first_value, np_.where(number == 1, second_value, same)
            )
            for same, first_value, second_value in zip(identity, *affine)
        )
        steps.append(
            (
                *parameters,
                saturation,
                hue,
                saturation_gap == number + 1,
                hue_gap == number + 1,
            )
        )
    return steps


@_register
class ColorJitter(_ImageLayer):
    """Random brightness, contrast, saturation and hue, in a random order per example.

    SimCLR's colour distortion (Section 3, Appendix A's `color_jitter`):
    with strength s, each example draws a brightness factor in
    [max(0, 1 - 0.8s), 1 + 0.8s] (multiplicative, `impl="simclrv2"`; `"simclrv1"` adds
    a delta in [-0.8s, 0.8s] as the first release did), contrast and saturation
    factors in [max(0, 1 - 0.8s), 1 + 0.8s] and a hue shift in [-0.2s, 0.2s] turns,
    applies the four with `tf.image.adjust_*` semantics in a random order of its own
    (the fixed order brightness, contrast, saturation, hue with
    `random_order=False`), clipping to [0, 1] after each, and keeps the result with
    probability `probability` (else the input is returned unchanged).

    The random order is computed without per-example branching: brightness and
    contrast split every order into three gaps, and saturation and hue (which
    commute) fall into some of them, so three batch-wide passes, each applying
    brightness or contrast and then saturation and/or hue, apply all 24 orders,
    every example acting in the passes its order needs. On 1-channel images
    saturation and hue are the identity, as for a gray RGB image, so only brightness
    and contrast act (two passes).

    Args:
        strength: colour distortion strength s >= 0 (1.0 for ImageNet, 0.5 for
            CIFAR-10 in the paper). Defaults to 1.0.
        probability: probability of jittering an example. Defaults to 0.8.
        random_order: draw the order of the four operations per example.
            Defaults to `True`.
        impl: `"simclrv2"` (multiplicative brightness, default) or `"simclrv1"`
            (additive brightness).
        seed: integer seed of the random stream, or `None`.
        jit_compile: compile the colour passes with XLA on the TensorFlow backend
            (several times faster on CPU). Defaults to `True`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        images: `(B, H, W, C)` or `(H, W, C)` images, float in [0, 1] or `uint8`.
        training: `True` (default) to jitter, `False` to return the input.

    Returns:
        Float images of the input's shape, in [0, 1].

    Example:

    >>> jitter = keras_simclr.augment.ColorJitter(strength=0.5, seed=0)
    >>> jitter(keras.random.uniform((4, 32, 32, 3), seed=0)).shape
    TensorShape([4, 32, 32, 3])
    """

    def __init__(
        self,
        strength=1.0,
        probability=0.8,
        random_order=True,
        impl="simclrv2",
        seed=None,
        jit_compile=True,
        **kwargs,
    ):
        super().__init__(seed=seed, jit_compile=jit_compile, **kwargs)
        if (
            isinstance(strength, bool)
            or not isinstance(strength, (int, float))
            or not 0.0 <= strength < math.inf
        ):
            raise ValueError(
                "`strength` must be a finite number >= 0. "
                f"Received: strength={strength!r}"
            )
        self.strength = float(strength)
        self.probability = checks.probability("probability", probability)
        if not isinstance(random_order, bool):
            raise ValueError(
                "`random_order` must be True or False. "
                f"Received: random_order={random_order!r}"
            )
        self.random_order = random_order
        if impl not in _JITTER_IMPLS:
            raise ValueError(
                f"`impl` must be one of {_JITTER_IMPLS}. Received: impl={impl!r}"
            )
        self.impl = impl

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws per-example jitter parameters.

        Returns:
            `None` when not training, else a dict of `(B,)` tensors
            `"apply"` (bool), `"brightness"`, `"contrast"`, `"saturation"`, `"hue"`
            (float32 factors / deltas), and `"order"`, int32 `(B, 4)`: the operation
            applied at each step (0 brightness, 1 contrast, 2 saturation, 3 hue).
        """
        if not training:
            return None
        np_ = self.backend.numpy
        seed = self._seed(seed)
        batch_size = self._batch_size(data)
        draws = self.backend.random.uniform((batch_size, 9), seed=seed, dtype=_FLOAT)
        factor = 0.8 * self.strength
        low, high = max(0.0, 1.0 - factor), 1.0 + factor

        def between(u, lower, upper):
            return lower + (upper - lower) * u

        if self.impl == "simclrv1":
            brightness = between(draws[:, 1], -factor, factor)
        else:
            brightness = between(draws[:, 1], low, high)
        if self.random_order:
            order = self.backend.cast(np_.argsort(draws[:, 5:], axis=1), "int32")
        else:
            order = np_.tile(np_.arange(4, dtype="int32")[None, :], (batch_size, 1))
        return {
            "apply": draws[:, 0] < self.probability,
            "brightness": brightness,
            "contrast": between(draws[:, 2], low, high),
            "saturation": between(draws[:, 3], low, high),
            "hue": between(draws[:, 4], -0.2 * self.strength, 0.2 * self.strength),
            "order": order,
        }

    def _transform_planes(self, planes, transformation, channels_last=False):
        steps = _jitter_steps(
            self.backend, transformation, self.impl, color=planes.shape[1] == 3
        )
        jitter = self._kernel(_jitter_kernel)
        jittered = planes
        for step in steps[:-1]:
            jittered = jitter(jittered, *step)
        # The last step also puts back the examples that are not jittered.
        return jitter(
            jittered,
            *steps[-1],
            original=planes,
            keep=transformation["apply"],
            channels_last=channels_last,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "strength": self.strength,
                "probability": self.probability,
                "random_order": self.random_order,
                "impl": self.impl,
            }
        )
        return config


def _drop_color(backend, planes, apply):
    """Planes with the examples in `apply` turned gray (3 equal channels); 1-channel
    planes are returned as they are."""
    if planes.shape[1] != 3:
        return planes
    np_ = backend.numpy
    # The luma weights of tf.image.rgb_to_grayscale / keras.ops.image.
    gray = 0.2989 * planes[:, 0:1] + 0.5870 * planes[:, 1:2] + 0.1140 * planes[:, 2:3]
    return np_.where(_broadcast(apply), gray + np_.zeros_like(planes), planes)


def _color_drop_kernel(backend, planes, apply, channels_last=False):
    return _channels_last(backend, _drop_color(backend, planes, apply), channels_last)


@_register
class RandomColorDrop(_ImageLayer):
    """Converts each image to grayscale with a probability, keeping its channels.

    SimCLR's colour drop (Section 3, Appendix A's `color_drop`), applied
    after the colour jitter with probability 0.2: the luma
    `0.2989 R + 0.5870 G + 0.1140 B` (`tf.image.rgb_to_grayscale`) replaces the three
    channels. Semantically `keras.layers.RandomGrayscale(factor=probability)`; a layer
    of its own for the `uint8` handling, validation and replica-aware seeds shared by
    `keras_simclr.augment`, and a stage that runs in the blur's passes inside
    `SimCLRAugment`. 1-channel images are returned unchanged.

    Args:
        probability: probability of converting an example. Defaults to 0.2.
        seed: integer seed of the random stream, or `None`.
        jit_compile: compile the conversion with XLA on the TensorFlow backend.
            Defaults to `True`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        images: `(B, H, W, C)` or `(H, W, C)` images, float in [0, 1] or `uint8`.
        training: `True` (default) to drop colour, `False` to return the input.

    Returns:
        Float images of the input's shape, in [0, 1].

    Example:

    >>> drop = keras_simclr.augment.RandomColorDrop(probability=0.2, seed=0)
    >>> drop(keras.random.uniform((4, 32, 32, 3), seed=0)).shape
    TensorShape([4, 32, 32, 3])
    """

    def __init__(self, probability=0.2, seed=None, jit_compile=True, **kwargs):
        super().__init__(seed=seed, jit_compile=jit_compile, **kwargs)
        self.probability = checks.probability("probability", probability)

    def get_random_transformation(self, data, training=True, seed=None):
        """Returns `None` when not training, else `{"apply": bool (B,)}`."""
        if not training:
            return None
        draws = self.backend.random.uniform(
            (self._batch_size(data),), seed=self._seed(seed), dtype=_FLOAT
        )
        return {"apply": draws < self.probability}

    def _transform_planes(self, planes, transformation, channels_last=False):
        if planes.shape[1] == 1:
            return _channels_last(self.backend, planes, channels_last)
        return self._kernel(_color_drop_kernel)(
            planes, transformation["apply"], channels_last=channels_last
        )

    def get_config(self):
        config = super().get_config()
        config["probability"] = self.probability
        return config
