"""Random resized crop and centre crop, with TensorFlow's bicubic resize.

SimCLR's first augmentation (Section 3, Appendix A) is a random crop resized to the
training size, with a horizontal flip; evaluation takes a central crop (Appendix
B.6). Both resize exactly as `tf.image.resize(crop, ..., "bicubic")` does, with
one gather per tap for the whole batch, reading `uint8` input as it is.
"""

import math

import keras

from keras_simclr.augment.base import _FLOAT
from keras_simclr.augment.base import _check_range
from keras_simclr.augment.base import _ImageLayer
from keras_simclr.augment.base import _register
from keras_simclr.images import to_unit_float
from keras_simclr import checks

# Keys' cubic convolution kernel parameter and the resolution of the weight table of
# TensorFlow's bicubic resize, which rounds the sub-pixel offset to 1/1024.
_KEYS_A = -0.5
_BICUBIC_TABLE_SIZE = 1024.0


def _keys_cubic(backend, distance):
    x = backend.numpy.abs(distance)
    a = _KEYS_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return backend.numpy.where(
        x <= 1.0, near, backend.numpy.where(x < 2.0, far, backend.numpy.zeros_like(x))
    )


def _bicubic_taps(backend, start, size, output_size, input_size, flip=None):
    """The input pixels and weights of a per-example bicubic resize along one axis.

    Output pixel `o` of example `b` reads 4 pixels of the window
    `[start[b], start[b] + size[b])` of an axis `input_size` pixels long, as
    `tf.image.resize(window, ..., "bicubic")` does: half-pixel centres, Keys' kernel
    with a = -0.5 on a 1/1024 table, and taps outside the window dropped with the
    remaining weights renormalised. Examples with `flip` read their outputs in
    reverse order (a mirror image, for free).

    Returns:
        `(indices, weights)`, int32 and float32 `(B, output_size, 4)`.
    """
    np_ = backend.numpy
    start = backend.cast(start, _FLOAT)
    size = backend.cast(size, _FLOAT)
    outputs = np_.arange(output_size, dtype=_FLOAT)
    source = (outputs[None, :] + 0.5) * (size / float(output_size))[:, None] - 0.5
    base = np_.floor(source)
    fraction = np_.round((source - base) * _BICUBIC_TABLE_SIZE) / _BICUBIC_TABLE_SIZE
    relative = base[:, :, None] + np_.arange(-1, 3, dtype=_FLOAT)[None, None, :]
    weights = _keys_cubic(backend, relative - (base + fraction)[:, :, None])
    inside = np_.logical_and(relative >= 0.0, relative < size[:, None, None])
    weights = np_.where(inside, weights, np_.zeros_like(weights))
    total = np_.sum(weights, axis=-1, keepdims=True)
    weights = weights / np_.where(total == 0.0, np_.ones_like(total), total)
    last = backend.cast(input_size, _FLOAT) - 1.0
    indices = np_.minimum(np_.maximum(relative + start[:, None, None], 0.0), last)
    indices = backend.cast(indices, "int32")
    if flip is not None:
        mirror = flip[:, None, None]
        indices = np_.where(mirror, np_.flip(indices, axis=1), indices)
        weights = np_.where(mirror, np_.flip(weights, axis=1), weights)
    return indices, weights


def _gather_taps(backend, images, indices, weights, axis, divisor=None):
    """`sum_k weights[b, o, k] * images[b, ..., indices[b, o, k], ...]` along `axis`
    (1 or 2) of `(B, A1, A2, C)` images: `(B, O, A2, C)` or `(B, A1, O, C)`.

    The leading axes are folded into the gathered one, so that every tap is one
    plain gather (of whole rows along axis 1, of pixels along axis 2) for the whole
    batch, fast with and without XLA on every backend. With `divisor`, the
    gathered values are cast to float32 and divided by it first.
    """
    np_ = backend.numpy
    batch, first, second, channels = backend.core.shape(images)
    rows = backend.cast(first, "int32")
    if axis == 1:
        flat = np_.reshape(images, (-1, second, channels))
        base = (np_.arange(batch, dtype="int32") * rows)[:, None]
        output_shape = (batch, -1, second, channels)
    else:
        flat = np_.reshape(images, (-1, channels))
        pixels = np_.arange(batch, dtype="int32")[:, None] * rows + np_.arange(
            first, dtype="int32"
        )[None, :]
        base = pixels[:, :, None] * backend.cast(second, "int32")
        indices = indices[:, None]
        weights = weights[:, None]
        output_shape = (batch, first, -1, channels)
    result = None
    for tap in range(4):
        gathered = np_.take(flat, np_.reshape(base + indices[..., tap], (-1,)), axis=0)
        if divisor is not None:
            gathered = backend.cast(gathered, _FLOAT) / divisor
        weight = weights[..., tap]
        weight = weight[:, :, None, None] if axis == 1 else weight[..., None]
        term = np_.reshape(gathered, output_shape) * weight
        result = term if result is None else result + term
    return result


def _resize_first_kernel(backend, images, indices, weights, axis, divisor=None):
    """Resizes `(B, H, W, C)` images along `axis` (1: height, 2: width), reading
    `uint8` images as `image / divisor`."""
    return _gather_taps(backend, images, indices, weights, axis, divisor=divisor)


def _resize_second_kernel(backend, values, indices, weights, axis):
    """Resizes the first pass's output along the other `axis`; returns planes
    `(B, C, out_h, out_w)` clipped to [0, 1]."""
    np_ = backend.numpy
    resized = _gather_taps(backend, values, indices, weights, axis)
    return np_.clip(np_.transpose(resized, (0, 3, 1, 2)), 0.0, 1.0)


def _crop_and_resize_one(backend, image, box, output_size, flip=None):
    """Crops `box` (top, left, height, width) out of one `(H, W, C)` image of any
    size, resizes it bicubically to `output_size` with the backend's resize (on
    TensorFlow, `tf.image.resize(crop, ..., "bicubic")`), mirrors it if `flip`;
    returns planes `(C, height, width)` in [0, 1]."""
    np_ = backend.numpy
    box = backend.cast(box, "int32")
    channels = image.shape[-1]
    crop = backend.core.slice(
        image,
        np_.stack([box[0], box[1], 0]),
        np_.stack([box[2], box[3], channels]),
    )
    # TensorFlow's bicubic resize is faster on floats than on `uint8`, and the
    # division first gives the views of the image's float copy divided by 255.
    crop = backend.cast(to_unit_float(crop, backend=backend), _FLOAT)
    resized = backend.image.resize(crop, output_size, interpolation="bicubic")
    if flip is not None:
        resized = backend.core.cond(
            flip, lambda: np_.flip(resized, axis=1), lambda: resized
        )
    return np_.clip(np_.transpose(resized, (2, 0, 1)), 0.0, 1.0)


def _crop_and_resize(layer, images, boxes, output_size, flips=None):
    """Crops `boxes` (top, left, height, width) out of `(B, H, W, C)` images,
    resizes them bicubically to `output_size`, mirrors the examples with `flips`;
    returns planes `(B, C, height, width)` in [0, 1]."""
    backend = layer.backend
    if images.shape[0] == 1 and None in tuple(images.shape[1:3]):
        # One image whose size is known only at run time (images of different
        # sizes mapped one by one): the backend's resize of the sliced box is
        # several times faster than gathering the taps op by op (XLA would compile
        # them again for every image size).
        flip = None if flips is None else flips[0]
        planes = _crop_and_resize_one(backend, images[0], boxes[0], output_size, flip)
        return planes[None]
    divisor = None
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        # A tensor, not a constant: XLA would multiply by the rounded reciprocal
        # of a constant 255, off in the last bit for half of the values, and a
        # uint8 image must give exactly the views of its float copy / 255.
        divisor = backend.convert_to_tensor(255.0, dtype=_FLOAT)
    else:
        images = backend.cast(images, _FLOAT)
    shape = backend.core.shape(images)
    boxes = backend.cast(boxes, _FLOAT)
    row_indices, row_weights = _bicubic_taps(
        backend, boxes[:, 0], boxes[:, 2], output_size[0], shape[1]
    )
    column_indices, column_weights = _bicubic_taps(
        backend, boxes[:, 1], boxes[:, 3], output_size[1], shape[2], flips
    )
    rows = (row_indices, row_weights, 1)
    columns = (column_indices, column_weights, 2)
    # The width's gather picks single pixels, the height's whole rows: the width
    # goes first unless that makes it gather more pixels (an image taller than the
    # output), cheapest from `uint8` input, and the rows' gather writes the planes.
    first, second = columns, rows
    if images.shape[1] is not None and images.shape[1] > output_size[0]:
        first, second = rows, columns
    values = layer._kernel(_resize_first_kernel)(
        images, first[0], first[1], axis=first[2], divisor=divisor
    )
    return layer._kernel(_resize_second_kernel)(
        values, second[0], second[1], axis=second[2]
    )


def _central_box(backend, height, width, ratio):
    """The fallback crop: the whole image, cut to the nearest allowed aspect ratio."""
    np_ = backend.numpy
    height = backend.cast(height, _FLOAT)
    width = backend.cast(width, _FLOAT)
    image_ratio = width / height
    crop_w = np_.where(image_ratio > ratio[1], np_.round(height * ratio[1]), width)
    crop_h = np_.where(image_ratio < ratio[0], np_.round(width / ratio[0]), height)
    crop_w = np_.clip(crop_w, 1.0, width)
    crop_h = np_.clip(crop_h, 1.0, height)
    top = np_.floor((height - crop_h) / 2.0)
    left = np_.floor((width - crop_w) / 2.0)
    return top, left, crop_h, crop_w


def _sample_crop_boxes(
    backend, seed, batch_size, height, width, scale, ratio, attempts
):
    """Vectorised Inception-style crop sampler; `(B, 4)` boxes (top, left, h, w)."""
    np_ = backend.numpy
    image_h = backend.cast(height, _FLOAT)
    image_w = backend.cast(width, _FLOAT)
    # One draw per call: an integer seed reused for two draws would correlate them.
    draws = backend.random.uniform(
        (batch_size, 2 * attempts + 2), seed=seed, dtype=_FLOAT
    )
    offsets = draws[:, 2 * attempts :]
    draws = np_.reshape(draws[:, : 2 * attempts], (batch_size, attempts, 2))
    area = image_h * image_w * (scale[0] + (scale[1] - scale[0]) * draws[..., 0])
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = np_.exp(log_low + (log_high - log_low) * draws[..., 1])
    crop_w = np_.round(np_.sqrt(area * aspect))
    crop_h = np_.round(np_.sqrt(area / aspect))
    valid = np_.logical_and(
        np_.logical_and(crop_w >= 1.0, crop_w <= image_w),
        np_.logical_and(crop_h >= 1.0, crop_h <= image_h),
    )
    # The first valid attempt, as a retry loop would find it; argmax does not promise
    # to return the first of tied maxima on every backend.
    attempt_ids = np_.arange(attempts, dtype="int32")[None, :]
    first = np_.min(np_.where(valid, attempt_ids, attempts), axis=1)
    found = first < attempts
    first = np_.minimum(first, attempts - 1)[:, None]
    crop_w = np_.take_along_axis(crop_w, first, axis=1)[:, 0]
    crop_h = np_.take_along_axis(crop_h, first, axis=1)[:, 0]
    top = np_.minimum(
        np_.floor(offsets[:, 0] * (image_h - crop_h + 1.0)), image_h - crop_h
    )
    left = np_.minimum(
        np_.floor(offsets[:, 1] * (image_w - crop_w + 1.0)), image_w - crop_w
    )
    fallback = _central_box(backend, height, width, ratio)
    box = [
        np_.where(found, value, np_.zeros_like(value) + default)
        for value, default in zip((top, left, crop_h, crop_w), fallback)
    ]
    return np_.stack(box, axis=-1)


@_register
class RandomResizedCrop(_ImageLayer):
    """Crops a random area of each image and resizes it (bicubic) to a fixed size.

    The Inception-style crop that SimCLR uses as its first augmentation (Section 3,
    Appendix A: "random crop with resize"): for every example, an area fraction is
    drawn uniformly from `scale` and an aspect ratio log-uniformly from `ratio`;
    the first of `max_attempts` such draws that fits in the image is taken, at a
    uniformly random position, and if none fits the central crop of the whole image
    (its aspect ratio clamped to `ratio`) is used. The crop is resized bicubically to
    `(height, width)` exactly as `tf.image.resize(crop, ..., "bicubic")` does: every
    output pixel reads its 4 taps with one gather per tap for the whole batch (no
    per-image loop), then the result is clipped to [0, 1]. The reference
    implementation samples with `tf.image.sample_distorted_bounding_box`, which draws
    the crop height rather than the area and requires at least 10% of the image; this
    layer samples the area itself, as the paper describes it.

    At inference (`training=False`) the output is the central crop, resized.

    Args:
        height: output height in pixels.
        width: output width in pixels.
        scale: range `(low, high)` of the crop area as a fraction of the image area,
            `0 < low <= high <= 1`. Defaults to `(0.08, 1.0)`.
        ratio: range `(low, high)` of the crop's aspect ratio (width / height),
            `0 < low <= high`. Defaults to `(3/4, 4/3)`.
        max_attempts: number of area/ratio draws before falling back to the central
            crop. Defaults to 100.
        seed: integer seed of the random stream, or `None`.
        jit_compile: compile the resize with XLA on the TensorFlow backend (several
            times faster on CPU). Defaults to `True`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        images: `(B, H, W, C)` or `(H, W, C)` images, float in [0, 1] or `uint8`.
        training: `True` (default) for random crops, `False` for the central crop.

    Returns:
        Float images `(B, height, width, C)` (or `(height, width, C)`) in [0, 1].

    Example:

    >>> crop = keras_simclr.augment.RandomResizedCrop(224, 224, seed=0)
    >>> crop(np.zeros((2, 256, 320, 3), "uint8")).shape
    TensorShape([2, 224, 224, 3])
    """

    _READS_UINT8 = True

    def __init__(
        self,
        height,
        width,
        scale=(0.08, 1.0),
        ratio=(3 / 4, 4 / 3),
        max_attempts=100,
        seed=None,
        jit_compile=True,
        **kwargs,
    ):
        super().__init__(seed=seed, jit_compile=jit_compile, **kwargs)
        self.height = checks.positive_int("height", height)
        self.width = checks.positive_int("width", width)
        self.scale = _check_range("scale", scale, 0.0, 1.0, open_lower=True)
        self.ratio = _check_range("ratio", ratio, 0.0, open_lower=True)
        self.max_attempts = checks.positive_int("max_attempts", max_attempts)

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws one crop box per example.

        Returns:
            `None` when not training, else a dict with `"boxes"`: float32
            `(B, 4)` rows `(top, left, crop_height, crop_width)` in input pixels.
        """
        if not training:
            return None
        shape = self.backend.core.shape(data)
        boxes = _sample_crop_boxes(
            self.backend,
            self._seed(seed),
            self._batch_size(data),
            shape[-3],
            shape[-2],
            self.scale,
            self.ratio,
            self.max_attempts,
        )
        return {"boxes": boxes}

    def transform_images(self, images, transformation, training=True):
        return self._output(self._crop_planes(images, transformation, training))

    def _crop_planes(self, images, transformation, training=True, flips=None):
        """The crops of `(B, H, W, C)` images (float or `uint8`) as planes
        `(B, C, height, width)` in [0, 1], mirrored where `flips`."""
        if not training or transformation is None:
            shape = self.backend.core.shape(images)
            box = _central_box(self.backend, shape[1], shape[2], self.ratio)
            boxes = self.backend.numpy.stack(box, axis=-1)[None, :]
            boxes = self.backend.numpy.tile(boxes, (shape[0], 1))
        else:
            boxes = transformation["boxes"]
        return _crop_and_resize(
            self, images, boxes, (self.height, self.width), flips
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "scale": self.scale,
                "ratio": self.ratio,
                "max_attempts": self.max_attempts,
            }
        )
        return config


@_register
class CenterCropResize(_ImageLayer):
    """Takes the central crop of each image and resizes it (bicubic), for evaluation.

    The evaluation preprocessing of SimCLR's reference implementation (used for the
    linear evaluation and fine-tuning): the central `crop_proportion` of the image,
    cut to the output's aspect ratio, resized bicubically to `(height, width)` and
    clipped to [0, 1]. No randomness; the same at training and inference.

    Args:
        height: output height in pixels.
        width: output width in pixels.
        crop_proportion: side of the crop as a fraction of the image side, in
            (0, 1]. Defaults to 0.875 (224 of 256).
        jit_compile: compile the resize with XLA on the TensorFlow backend.
            Defaults to `True`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        images: `(B, H, W, C)` or `(H, W, C)` images, float in [0, 1] or `uint8`.

    Returns:
        Float images `(B, height, width, C)` (or `(height, width, C)`) in [0, 1].

    Example:

    >>> center = keras_simclr.augment.CenterCropResize(224, 224)
    >>> center(np.zeros((2, 256, 256, 3), "uint8")).shape
    TensorShape([2, 224, 224, 3])
    """

    _READS_UINT8 = True
    _RANDOM = False

    def __init__(
        self, height, width, crop_proportion=0.875, jit_compile=True, **kwargs
    ):
        super().__init__(seed=None, jit_compile=jit_compile, **kwargs)
        self.height = checks.positive_int("height", height)
        self.width = checks.positive_int("width", width)
        if (
            isinstance(crop_proportion, bool)
            or not isinstance(crop_proportion, (int, float))
            or not 0.0 < crop_proportion <= 1.0
        ):
            raise ValueError(
                "`crop_proportion` must be a number in (0, 1]. Received: "
                f"crop_proportion={crop_proportion!r}"
            )
        self.crop_proportion = float(crop_proportion)

    def get_random_transformation(self, data, training=True, seed=None):
        return None

    def transform_images(self, images, transformation=None, training=True):
        np_ = self.backend.numpy
        shape = self.backend.core.shape(images)
        image_h = self.backend.cast(shape[1], _FLOAT)
        image_w = self.backend.cast(shape[2], _FLOAT)
        aspect = self.height / self.width
        # Keep the output's aspect ratio: the crop spans `crop_proportion` of the
        # image side that limits it.
        output_wider = aspect < image_h / image_w
        crop_w = np_.where(
            output_wider,
            np_.round(self.crop_proportion * image_w),
            np_.round(self.crop_proportion / aspect * image_h),
        )
        crop_h = np_.where(
            output_wider,
            np_.round(self.crop_proportion * aspect * image_w),
            np_.round(self.crop_proportion * image_h),
        )
        crop_h = np_.clip(crop_h, 1.0, image_h)
        crop_w = np_.clip(crop_w, 1.0, image_w)
        top = np_.floor((image_h - crop_h + 1.0) / 2.0)
        left = np_.floor((image_w - crop_w + 1.0) / 2.0)
        box = np_.stack([top, left, crop_h, crop_w])[None, :]
        boxes = np_.tile(box, (shape[0], 1))
        planes = _crop_and_resize(self, images, boxes, (self.height, self.width))
        return self._output(planes)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "crop_proportion": self.crop_proportion,
            }
        )
        return config

