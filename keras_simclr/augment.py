"""SimCLR's augmentation pipeline as Keras preprocessing layers.

SimCLR (Chen et al., ICML 2020, Section 3 and Appendix A) learns from two random
views of every image; the composition of random crop (with flip and resize), colour
distortion and Gaussian blur is what makes the contrastive task useful. Every layer
here works on a batch `(B, H, W, C)` or a single image `(H, W, C)` with 1 or 3
channels, draws its random parameters per example from a seeded, stateless random
stream (no Python randomness, so it traces once and runs under XLA), and can run in a
`tf.data` pipeline (`dataset.map(layer)`) or inside a model with the same results.

Inputs are float images in [0, 1] or `uint8` images in [0, 255] (divided by 255);
outputs are float32 (or the layer's compute dtype), clipped to [0, 1].

Each layer separates drawing the parameters of a batch
(`get_random_transformation(images)`) from applying them
(`transform_images(images, transformation)`), as Keras' own preprocessing layers do,
so the parameters can be inspected or fixed. Applying them runs as a few
XLA-compiled kernels on the TensorFlow backend (`jit_compile=True`, the default):
the per-pixel work of a whole batch then streams through memory a handful of times
instead of once per elementary operation.
"""

import functools
import importlib
import math

import keras

from keras_simclr import distribute

# Keras' image preprocessing base class is not exported under `keras.layers`; it gives
# these layers the tf.data-safe backend switching and the single-image handling of
# Keras' own RandomFlip, RandomGrayscale and RandomColorJitter.
from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (  # noqa: E501
    BaseImagePreprocessingLayer,
)
from keras.src.utils import backend_utils

_PACKAGE = "keras_simclr"
_FLOAT = "float32"
_PRESETS = ("imagenet", "cifar", "grayscale")
_JITTER_IMPLS = ("simclrv1", "simclrv2")

# Colour-jitter operation codes, in the order of the reference's fixed-order jitter.
_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE, _IDENTITY = 0, 1, 2, 3, 4

# Keys' cubic convolution kernel parameter and the resolution of the weight table of
# TensorFlow's bicubic resize, which rounds the sub-pixel offset to 1/1024.
_KEYS_A = -0.5
_BICUBIC_TABLE_SIZE = 1024.0

# Added to the seed of replica k (times k), so that the replicas of a
# MirroredStrategy draw different views from one synchronised seed state.
_REPLICA_SEED_STRIDE = 1_000_003

# The backend of `tf.data` pipelines, whatever Keras' backend is.
_TENSORFLOW = backend_utils.DynamicBackend("tensorflow")

# XLA-compiled kernels, shared by every layer instance: one function per kernel and
# static arguments, traced once per input signature, not once per layer.
_COMPILED_KERNELS = {}


def _compiled(kernel, static):
    """`kernel(backend, ..., **static)` on the TensorFlow backend, compiled with XLA.

    Each kernel is one compiled function, and the layers call several in sequence:
    compiling a whole pipeline as one function lets XLA fuse a stage into the next
    one's per-pixel loop, recomputing it for every tap or channel read, which was
    several times slower on CPU than materialising each stage's output.
    """
    key = (kernel, tuple(sorted(static.items())))
    function = _COMPILED_KERNELS.get(key)
    if function is None:
        import tensorflow as tf

        function = tf.function(
            functools.partial(
                kernel,
                importlib.import_module("keras.src.backend.tensorflow"),
                **static,
            ),
            jit_compile=True,
            autograph=False,
        )
        _COMPILED_KERNELS[key] = function
    return function


def _sub_seed(seed, index):
    """The seed a composite layer passes to its `index`-th part.

    `None` lets the part use its own generator; a `SeedGenerator` advances on every
    draw and can be shared; an integer is offset so that the parts draw distinct
    streams that do not collide with those of nearby integer seeds.
    """
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    return seed * 8 + index


def _register(cls):
    return keras.saving.register_keras_serializable(package=_PACKAGE)(cls)


class _ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A `SeedGenerator` whose seeds differ between replicas running in sync.

    Created under a `tf.distribute` strategy, the state variable is mirrored and all
    replicas would read the same seed, i.e. augment their shards identically; the
    replica index is folded into every seed drawn inside a replica context.
    """

    def next(self, ordered=True):
        seed = super().next(ordered=ordered)
        if keras.backend.backend() != "tensorflow" or distribute.num_replicas() == 1:
            return seed
        offset = self.backend.cast(distribute.replica_index(), seed.dtype)
        return seed + self.backend.numpy.stack(
            [offset * _REPLICA_SEED_STRIDE, offset * 0]
        )


def _check_probability(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"`{name}` must be a number between 0 and 1. Received: {name}={value!r}"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be between 0 and 1. Received: {name}={value}")
    return float(value)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return value


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
    return seed


def _check_range(name, value, lower_bound, upper_bound=None, open_lower=False):
    """Validates a `(low, high)` pair with `low <= high` inside the given bounds."""
    message = (
        f"`{name}` must be a pair (low, high) with "
        f"{lower_bound} {'<' if open_lower else '<='} low <= high"
        + (f" <= {upper_bound}" if upper_bound is not None else "")
        + f". Received: {name}={value!r}"
    )
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(message)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise ValueError(message)
    low, high = float(value[0]), float(value[1])
    too_low = low <= lower_bound if open_lower else low < lower_bound
    if too_low or low > high or (upper_bound is not None and high > upper_bound):
        raise ValueError(message)
    return (low, high)


def _image_size_pair(name, value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        raise ValueError(
            f"`{name}` must be a positive integer or a pair (height, width) of "
            f"positive integers. Received: {name}={value!r}"
        )
    return (int(value[0]), int(value[1]))


def _known_after_batch(value):
    """Whether `value` (a tensor, array or Python value) has a static shape after
    its first (batch) axis."""
    try:
        shape = tuple(getattr(value, "shape", ()))
    except ValueError:  # unknown rank
        return False
    return None not in shape[1:]


class _ImageLayer(BaseImagePreprocessingLayer):
    """Input validation, `uint8` conversion, seeding, kernels shared by the layers."""

    _USE_BASE_FACTOR = False
    _RANDOM = True

    def __init__(self, seed=None, jit_compile=True, **kwargs):
        data_format = kwargs.pop("data_format", "channels_last")
        if data_format != "channels_last":
            raise ValueError(
                "keras_simclr augmentation layers take channels-last images "
                f"(B, H, W, C). Received: data_format={data_format!r}"
            )
        super().__init__(data_format="channels_last", **kwargs)
        self.seed = _check_seed(seed)
        if not isinstance(jit_compile, bool):
            raise ValueError(
                "`jit_compile` must be True or False. "
                f"Received: jit_compile={jit_compile!r}"
            )
        self.jit_compile = jit_compile
        if self._RANDOM:
            self.generator = _ReplicaSeedGenerator(
                self._generator_seed(seed), name="seed_generator"
            )

    def _generator_seed(self, seed):
        return seed

    def _kernel(self, kernel):
        """`kernel` bound to this layer's backend, XLA-compiled on TensorFlow.

        Inputs whose height or width is only known at run time (single images of
        varying sizes mapped one by one) run op by op: XLA would compile the kernel
        again for every new size.
        """
        uncompiled = functools.partial(kernel, self.backend)
        if not self.jit_compile or self.backend.name != "tensorflow":
            return uncompiled

        def run(*args, **kwargs):
            if not all(map(_known_after_batch, (*args, *kwargs.values()))):
                return uncompiled(*args, **kwargs)
            static = {
                name: value
                for name, value in kwargs.items()
                if value is None or isinstance(value, (bool, int, float))
            }
            tensors = {name: kwargs[name] for name in kwargs.keys() - static.keys()}
            return _compiled(kernel, static)(*args, **tensors)

        return run

    def _on_subset(self, select, probability, on_subset, on_all):
        """`on_subset(index, position)` on the examples in `select`, else `on_all()`.

        A stage that changes only the examples in `select` (bool `(B,)`, each
        drawn with `probability`) does a fraction of the work on a subset of the
        batch: `index` `(K,)` lists the selected examples (then others, up to K)
        and `position[b]` is example b's place in it. K is a fixed capacity, the
        expected count plus four standard deviations, so that shapes stay static
        (one XLA compilation, TPU-friendly); when more examples than that are
        selected, which is rare, `on_all()` runs instead. Both return the stage's
        result for the whole batch.
        """
        if not 0.0 < probability < 1.0:
            return on_all()
        np_ = self.backend.numpy
        batch = select.shape[0]
        if batch is None:
            batch = self.backend.core.shape(select)[0]
            expected = self.backend.cast(batch, _FLOAT) * probability
            spread = 4.0 * np_.sqrt(expected * (1.0 - probability))
            capacity = self.backend.cast(np_.ceil(expected + spread), "int32") + 1
            capacity = np_.minimum(capacity, batch)
        else:
            spread = 4.0 * math.sqrt(batch * probability * (1.0 - probability))
            capacity = math.ceil(batch * probability + spread) + 1
            if capacity >= batch:
                return on_all()
        examples = np_.arange(batch, dtype="int32")
        selected = self.backend.cast(select, "int32")
        # Selected examples first, each group in batch order.
        index = np_.argsort(examples + (1 - selected) * batch)[:capacity]
        index = self.backend.cast(index, "int32")
        position = np_.maximum(np_.cumsum(selected) - 1, 0)
        return self.backend.core.cond(
            np_.sum(selected) <= capacity,
            lambda: on_subset(index, position),
            on_all,
        )

    def __call__(self, inputs, *args, **kwargs):
        images = self._standardize_images(inputs)
        if (
            keras.backend.standardize_dtype(images.dtype) == "uint8"
            and not isinstance(images, keras.KerasTensor)
            and backend_utils.in_tf_graph()
        ):
            # In a TensorFlow graph (tf.data) Keras' data layers cast their inputs
            # to the compute dtype, which would turn bytes into floats in [0, 255]:
            # run the layer as they do there, minus that cast.
            self.backend.set_backend("tensorflow")
            convert_input_args = self._convert_input_args
            self._convert_input_args = False
            try:
                return keras.layers.Layer.__call__(self, images, *args, **kwargs)
            finally:
                self.backend.reset()
                self._convert_input_args = convert_input_args
        return super().__call__(images, *args, **kwargs)

    # Whether `transform_images` takes `uint8` images as they are.
    _READS_UINT8 = False

    def _standardize_images(self, images):
        """Checks rank, channels and dtype; converts `uint8` to floats in [0, 1]
        unless the layer reads them itself."""
        name = type(self).__name__
        if isinstance(images, dict):
            raise ValueError(
                f"{name} takes a tensor of images, not a dict. Received keys: "
                f"{sorted(images)}. Map over the images only, e.g. "
                "`dataset.map(lambda x, y: (augment(x), y))`."
            )
        if not (hasattr(images, "shape") and hasattr(images, "dtype")):
            images = keras.ops.convert_to_numpy(images)
        try:
            shape = tuple(images.shape)
        except ValueError:
            shape = None
        if shape is None or len(shape) not in (3, 4):
            raise ValueError(
                f"{name} expects images of rank 3 (H, W, C) or rank 4 (B, H, W, C). "
                f"Received: shape={shape}. Add a channel axis to 2-D images "
                "(`images[..., None]`)."
            )
        if shape[-1] not in (1, 3):
            raise ValueError(
                f"{name} expects 1 (grayscale) or 3 (RGB) channels in the last axis. "
                f"Received: shape={shape}."
            )
        try:
            dtype = keras.backend.standardize_dtype(images.dtype)
        except ValueError:
            dtype = str(images.dtype)
        if dtype == "uint8":
            # Layers that resize read the bytes themselves (a quarter of the
            # memory traffic of a float copy); the others convert them here.
            return images if self._READS_UINT8 else self._uint8_to_unit_float(images)
        if not dtype.startswith(("float", "bfloat")):
            raise ValueError(
                f"{name} expects float images in [0, 1] or uint8 images in "
                f"[0, 255]. Received: dtype={dtype}. Cast integer images to uint8 "
                "or scale them to floats in [0, 1]."
            )
        return images

    def _uint8_to_unit_float(self, images):
        if isinstance(images, keras.KerasTensor):
            return keras.ops.divide(keras.ops.cast(images, _FLOAT), 255.0)
        # Inside tf.data the tensors are TensorFlow's whatever the Keras backend.
        in_tf_graph = backend_utils.in_tf_graph()
        if in_tf_graph:
            self.backend.set_backend("tensorflow")
        try:
            # Not a compiled kernel: XLA multiplies by the reciprocal of 255 instead,
            # off in the last bit for half of the values, and a uint8 image should
            # give exactly the views of its float copy divided by 255.
            return self.backend.numpy.divide(self.backend.cast(images, _FLOAT), 255.0)
        finally:
            if in_tf_graph:
                self.backend.reset()

    def _seed(self, seed):
        return (
            seed
            if seed is not None
            else self._get_seed_generator(self.backend._backend)
        )

    def _batch_size(self, images):
        shape = self.backend.core.shape(images)
        return 1 if len(shape) == 3 else shape[0]

    def _output(self, planes):
        """Planes `(B, C, H, W)` to images `(B, H, W, C)` in [0, 1], layer dtype."""
        images = self._kernel(_planes_to_images_kernel)(planes)
        return self.backend.cast(images, self.compute_dtype)

    def transform_images(self, images, transformation, training=True):
        images = self.backend.cast(images, _FLOAT)
        if training and transformation is not None:
            images = self._transform_planes(
                _to_planes(self.backend, images), transformation, channels_last=True
            )
        else:
            images = self.backend.numpy.clip(images, 0.0, 1.0)
        return self.backend.cast(images, self.compute_dtype)

    def _transform_planes(self, planes, transformation, channels_last=False):
        """Applies `transformation` to float32 images laid out `(B, C, H, W)`;
        returns planes, or with `channels_last` images `(B, H, W, C)`, in [0, 1]."""
        raise NotImplementedError

    def transform_labels(self, labels, transformation, training=True):
        return labels

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        raise NotImplementedError(
            f"{type(self).__name__} augments images only; bounding boxes are not "
            "supported."
        )

    def transform_segmentation_masks(
        self, segmentation_masks, transformation, training=True
    ):
        raise NotImplementedError(
            f"{type(self).__name__} augments images only; segmentation masks are "
            "not supported."
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.pop("data_format", None)
        config["seed"] = self.seed
        config["jit_compile"] = self.jit_compile
        return config


def _to_planes(backend, images):
    # The maths runs on channel planes (B, C, H, W): per-pixel colour operations
    # become elementwise operations between contiguous planes, which TensorFlow and
    # XLA vectorise far better than reductions over a trailing axis of size 3.
    return backend.numpy.transpose(images, (0, 3, 1, 2))


def _planes_to_images_kernel(backend, planes):
    return _channels_last(backend, planes, True)


def _channels_last(backend, planes, channels_last):
    """Clips planes to [0, 1], as images `(B, H, W, C)` when `channels_last`."""
    np_ = backend.numpy
    planes = np_.clip(planes, 0.0, 1.0)
    return np_.transpose(planes, (0, 2, 3, 1)) if channels_last else planes


def _broadcast(values):
    """Per-example values `(B,)` shaped to broadcast over planes `(B, C, H, W)`."""
    return values[:, None, None, None]


# Crop + resize --------------------------------------------------------------------


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
    if keras.backend.standardize_dtype(image.dtype) == "uint8":
        crop = np_.divide(backend.cast(crop, _FLOAT), 255.0)
    crop = backend.cast(crop, _FLOAT)
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
        self.height = _check_positive_int("height", height)
        self.width = _check_positive_int("width", width)
        self.scale = _check_range("scale", scale, 0.0, 1.0, open_lower=True)
        self.ratio = _check_range("ratio", ratio, 0.0, open_lower=True)
        self.max_attempts = _check_positive_int("max_attempts", max_attempts)

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
        self.height = _check_positive_int("height", height)
        self.width = _check_positive_int("width", width)
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


# Colour ----------------------------------------------------------------------------


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
        self.probability = _check_probability("probability", probability)
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
    this module. 1-channel images are returned unchanged.

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
        self.probability = _check_probability("probability", probability)

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


# Blur ------------------------------------------------------------------------------


def _reflect_indices(size, radius):
    """Positions `-radius .. size - 1 + radius` mirrored into `[0, size)` (edge not
    repeated, as `np.pad(..., "reflect")`, folding again where `radius >= size`)."""
    period = max(2 * (size - 1), 1)
    indices = []
    for position in range(-radius, size + radius):
        position %= period
        indices.append(position if position < size else period - position)
    return indices


def _symmetric_convolution(kernels, shifted, radius):
    """`sum_o kernels[:, |o|] * shifted(o)` for `o` in `[-radius, radius]`, one
    product per pair of taps (the kernels are symmetric)."""
    result = _broadcast(kernels[:, 0]) * shifted(0)
    for offset in range(1, radius + 1):
        result = result + _broadcast(kernels[:, offset]) * (
            shifted(-offset) + shifted(offset)
        )
    return result


def _window(values, axis, start, size):
    index = [slice(None)] * 4
    index[axis] = slice(start, start + size)
    return values[tuple(index)]


def _blur_rows_kernel(backend, planes, kernels, radius, gray=None):
    """Reflect-pads planes `(B, C, H, W)` by `radius` on both axes and convolves
    them along the height with per-example symmetric kernels `(B, radius + 1)`
    (centre tap first): `(B, C, H, W + 2 * radius)`, ready for the column pass.

    One padded copy serves both passes: padding each axis in its own pass costs
    as much memory traffic as the convolutions themselves. With `gray`, the
    examples in it lose their colour first (in the padding pass).
    """
    np_ = backend.numpy
    if gray is not None:
        planes = _drop_color(backend, planes, gray)
    height, width = planes.shape[2], planes.shape[3]
    if radius < height and radius < width:
        padded = np_.pad(
            planes,
            [(0, 0), (0, 0), (radius, radius), (radius, radius)],
            mode="reflect",
        )
    else:
        padded = np_.take(planes, _reflect_indices(height, radius), axis=2)
        padded = np_.take(padded, _reflect_indices(width, radius), axis=3)
    return _symmetric_convolution(
        kernels, lambda offset: _window(padded, 2, radius + offset, height), radius
    )


def _blur_columns_kernel(
    backend,
    rows,
    kernels,
    radius,
    original,
    keep,
    position=None,
    gray=None,
    channels_last=False,
):
    """Convolves the output of `_blur_rows_kernel` along the width: the blurred
    planes `(B, C, H, W)`, or `original` for the examples not in `keep`, clipped to
    [0, 1] (as images `(B, H, W, C)` with `channels_last`). With `position`, `rows`
    and `kernels` hold a subset of the examples and example `b` of the batch is
    `position[b]` of the subset. With `gray`, the examples in it lose their colour
    first (as in `_blur_rows_kernel`)."""
    np_ = backend.numpy
    if gray is not None:
        original = _drop_color(backend, original, gray)
    width = original.shape[3]
    result = _symmetric_convolution(
        kernels, lambda offset: _window(rows, 3, radius + offset, width), radius
    )
    if position is not None:
        result = np_.take(result, position, axis=0)
    result = np_.where(_broadcast(keep), result, original)
    return _channels_last(backend, result, channels_last)


def _gaussian_kernels(backend, sigma, radius):
    """Per-example Gaussian taps `(B, radius + 1)`, centre first, normalised so
    that the full kernel of side `2 * radius + 1` sums to 1."""
    np_ = backend.numpy
    taps = np_.arange(radius + 1, dtype=_FLOAT)
    kernels = np_.exp(-(taps[None, :] ** 2) / (2.0 * sigma[:, None] ** 2))
    total = 2.0 * np_.sum(kernels, axis=1, keepdims=True) - kernels[:, :1]
    return kernels / total


@_register
class RandomGaussianBlur(_ImageLayer):
    """Blurs each image with a Gaussian of its own random sigma, with a probability.

    SimCLR's blur (Appendix A): with probability 0.5, a separable Gaussian filter
    with sigma drawn uniformly from [0.1, 2.0] per example and a kernel side of 10%
    of the image height (radius `int(height * kernel_size_fraction) // 2`, side
    `2 * radius + 1`, the same kernel along both axes). Borders are reflect-padded
    (the reference pads with zeros, darkening the edges). The reference draws one
    sigma for a whole batch; here every example draws its own. The blur is one
    pass per axis over the whole batch, every example with its own taps.

    Args:
        probability: probability of blurring an example. Defaults to 0.5.
        sigma: range `(low, high)` of the standard deviation in pixels,
            `0 < low <= high`. Defaults to `(0.1, 2.0)`.
        kernel_size_fraction: kernel side as a fraction of the image height, in
            (0, 1]. Defaults to 0.1.
        seed: integer seed of the random stream, or `None`.
        jit_compile: compile the blur with XLA on the TensorFlow backend (several
            times faster on CPU). Defaults to `True`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        images: `(B, H, W, C)` or `(H, W, C)` images, float in [0, 1] or `uint8`.
        training: `True` (default) to blur, `False` to return the input.

    Returns:
        Float images of the input's shape, in [0, 1].

    Example:

    >>> blur = keras_simclr.augment.RandomGaussianBlur(seed=0)
    >>> blur(keras.random.uniform((4, 224, 224, 3), seed=0)).shape
    TensorShape([4, 224, 224, 3])
    """

    def __init__(
        self,
        probability=0.5,
        sigma=(0.1, 2.0),
        kernel_size_fraction=0.1,
        seed=None,
        jit_compile=True,
        **kwargs,
    ):
        super().__init__(seed=seed, jit_compile=jit_compile, **kwargs)
        self.probability = _check_probability("probability", probability)
        self.sigma = _check_range("sigma", sigma, 0.0, open_lower=True)
        if (
            isinstance(kernel_size_fraction, bool)
            or not isinstance(kernel_size_fraction, (int, float))
            or not 0.0 < kernel_size_fraction <= 1.0
        ):
            raise ValueError(
                "`kernel_size_fraction` must be a number in (0, 1]. Received: "
                f"kernel_size_fraction={kernel_size_fraction!r}"
            )
        self.kernel_size_fraction = float(kernel_size_fraction)

    def _kernel_radius(self, height):
        """The blur radius for images `height` pixels tall (kernel side 2r + 1)."""
        return int(height * self.kernel_size_fraction) // 2

    def get_random_transformation(self, data, training=True, seed=None):
        """Returns `None` when not training, else `{"apply": bool, "sigma": float}`,
        both `(B,)`."""
        if not training:
            return None
        draws = self.backend.random.uniform(
            (self._batch_size(data), 2), seed=self._seed(seed), dtype=_FLOAT
        )
        low, high = self.sigma
        return {
            "apply": draws[:, 0] < self.probability,
            "sigma": low + (high - low) * draws[:, 1],
        }

    def _transform_planes(self, planes, transformation, channels_last=False, gray=None):
        """See `_ImageLayer._transform_planes`; the examples in `gray` (bool `(B,)`)
        lose their colour before the blur, in its passes (`SimCLRAugment`'s colour
        drop)."""
        height, width = planes.shape[2], planes.shape[3]
        if height is None or width is None:
            raise ValueError(
                "RandomGaussianBlur needs images of known height and width. "
                f"Received planes of shape {tuple(planes.shape)}"
            )
        radius = self._kernel_radius(height)
        if radius == 0:
            if gray is not None:
                return self._kernel(_color_drop_kernel)(
                    planes, gray, channels_last=channels_last
                )
            return _channels_last(self.backend, planes, channels_last)
        kernels = _gaussian_kernels(
            self.backend, self.backend.cast(transformation["sigma"], _FLOAT), radius
        )
        keep = transformation["apply"]
        take = self.backend.numpy.take
        blur_rows = self._kernel(_blur_rows_kernel)
        blur_columns = self._kernel(_blur_columns_kernel)

        def blur_all():
            rows = blur_rows(planes, kernels, radius=radius, gray=gray)
            return blur_columns(
                rows,
                kernels,
                radius=radius,
                original=planes,
                keep=keep,
                gray=gray,
                channels_last=channels_last,
            )

        def blur_subset(index, position):
            subset_kernels = take(kernels, index, axis=0)
            rows = blur_rows(
                take(planes, index, axis=0),
                subset_kernels,
                radius=radius,
                gray=None if gray is None else take(gray, index, axis=0),
            )
            return blur_columns(
                rows,
                subset_kernels,
                radius=radius,
                original=planes,
                keep=keep,
                position=position,
                gray=gray,
                channels_last=channels_last,
            )

        return self._on_subset(keep, self.probability, blur_subset, blur_all)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "probability": self.probability,
                "sigma": self.sigma,
                "kernel_size_fraction": self.kernel_size_fraction,
            }
        )
        return config


# Composition -----------------------------------------------------------------------


class _SharedBackend:
    """Runs sub-layers on the backend of the calling layer (TensorFlow in tf.data)."""

    def __init__(self, backend, layers):
        self.backend = backend
        self.layers = [layer for layer in layers if hasattr(layer, "backend")]

    def __enter__(self):
        for layer in self.layers:
            layer.backend.set_backend(self.backend.name)

    def __exit__(self, *exc_info):
        for layer in self.layers:
            layer.backend.reset()


@_register
class RandomApply(_ImageLayer):
    """Applies a layer to each example with a probability, else passes it through.

    SimCLR composes its augmentations as `random_apply(f, p, x)` (Appendix A):
    colour jitter with p = 0.8, colour drop with p = 0.2, blur with
    p = 0.5. This layer does that per example for any image-to-image layer of
    unchanged shape; the layer runs on the whole batch and each example keeps its
    result with probability `probability`.

    Args:
        layer: a Keras layer mapping images to images of the same shape, e.g. a
            Keras preprocessing layer or one of this module's.
        probability: probability of applying `layer` to an example.
        seed: integer seed of the random stream, or `None`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        images: `(B, H, W, C)` or `(H, W, C)` images, float in [0, 1] or `uint8`.
        training: `True` (default) to apply at random, `False` to return the input.

    Returns:
        Float images of the input's shape, clipped to [0, 1].

    Example:

    >>> solarize = keras.layers.Solarization(0.5, value_range=(0, 1))
    >>> maybe = keras_simclr.augment.RandomApply(solarize, probability=0.2, seed=0)
    >>> maybe(keras.random.uniform((4, 32, 32, 3), seed=0)).shape
    TensorShape([4, 32, 32, 3])
    """

    def __init__(self, layer, probability, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "`layer` must be a Keras layer mapping images to images. "
                f"Received: layer={layer!r}"
            )
        self.layer = layer
        self.probability = _check_probability("probability", probability)

    def _is_preprocessing(self):
        return isinstance(self.layer, BaseImagePreprocessingLayer)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        super().build(input_shape)

    def get_random_transformation(self, data, training=True, seed=None):
        """Returns `None` when not training, else `{"apply": bool (B,), "layer": ...}`
        where `"layer"` holds the wrapped preprocessing layer's own parameters."""
        if not training:
            return None
        # The wrapped layer draws from this layer's stream too, so that `seed` alone
        # fixes the result.
        seed = self._seed(seed)
        draws = self.backend.random.uniform(
            (self._batch_size(data),), seed=_sub_seed(seed, 0), dtype=_FLOAT
        )
        transformation = {"apply": draws < self.probability, "layer": None}
        if self._is_preprocessing():
            with _SharedBackend(self.backend, [self.layer]):
                transformation["layer"] = self.layer.get_random_transformation(
                    data, training=True, seed=_sub_seed(seed, 1)
                )
        return transformation

    def transform_images(self, images, transformation, training=True):
        images = self.backend.cast(images, _FLOAT)
        if not training or transformation is None:
            return self._output_images(images)
        if self._is_preprocessing():
            with _SharedBackend(self.backend, [self.layer]):
                applied = self.layer.transform_images(
                    images, transformation["layer"], training=True
                )
        else:
            applied = self.layer(images, training=True)
        applied = self.backend.cast(applied, _FLOAT)
        if tuple(applied.shape) != tuple(images.shape):
            raise ValueError(
                "RandomApply needs a layer that keeps the image shape. "
                f"{self.layer.name} maps {tuple(images.shape)} to "
                f"{tuple(applied.shape)}."
            )
        selected = self.backend.numpy.where(
            _broadcast(transformation["apply"]), applied, images
        )
        return self._output_images(selected)

    def _output_images(self, images):
        images = self.backend.numpy.clip(images, 0.0, 1.0)
        return self.backend.cast(images, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        # Nothing to compile here: the wrapped layer decides for itself.
        config.pop("jit_compile", None)
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "probability": self.probability,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


_PRESET_DEFAULTS = {
    # preset: (colour jitter strength, colour drop, blur)
    "imagenet": (1.0, True, True),
    "cifar": (0.5, True, False),
    "grayscale": (0.5, False, False),
}


@_register
class SimCLRAugment(_ImageLayer):
    """SimCLR's full augmentation: one call makes one random view of each image.

    The composition of the paper (Section 3, Appendix A): random resized crop
    (area 0.08-1, aspect 3/4-4/3, bicubic) with a horizontal flip (p = 0.5), colour
    jitter (p = 0.8, random order per example), colour drop (p = 0.2) and, for
    ImageNet, Gaussian blur (p = 0.5, sigma 0.1-2.0, kernel 10% of the side). Every
    parameter is drawn per example; calling the layer twice on a batch gives the two
    views of the positive pairs.

    Presets:

    - `"imagenet"`: jitter strength 1.0, colour drop, blur (Appendix A).
    - `"cifar"`: jitter strength 0.5, colour drop, no blur (Appendix B, CIFAR-10).
    - `"grayscale"`: for 1-channel images such as Fashion-MNIST: crop, flip and
      brightness / contrast jitter (strength 0.5, p = 0.8; saturation, hue and
      colour drop do nothing on one channel), no blur. Takes 1-channel images only.

    Output shape, for every preset: `(B, *image_size, C)` with the channels of the
    input (1 or 3).

    Speed: a batch runs as a few passes over memory (crop rows, read straight from
    `uint8` input; crop columns; three colour-jitter steps; colour drop; blur rows
    and columns, on the subset of examples that are blurred), each an XLA-compiled
    kernel on TensorFlow. Called inside a function that XLA compiles as a whole (a
    model compiled with `jit_compile=True`), the passes are fused into each other
    and recomputed, several times slower on CPU: there, augment in `tf.data` or in a
    step without `jit_compile`.

    Args:
        image_size: output size, an integer or `(height, width)`.
        preset: `"imagenet"` (default), `"cifar"` or `"grayscale"`.
        color_jitter_strength: overrides the preset's jitter strength.
        blur: `True` / `False` overrides the preset's blur.
        crop_scale: `(low, high)`, the range of the crop's area as a fraction of
            the image. Defaults to the paper's `(0.08, 1.0)`; small images and
            short runs may do better with a larger `low`.
        flip: random horizontal flip. Defaults to `True`.
        seed: integer seed; the sub-layers draw from streams derived from it.
        jit_compile: run the crop, colour and blur passes as XLA-compiled kernels on
            the TensorFlow backend (5-10x faster on CPU than op by op). Defaults
            to `True`.
        **kwargs: base layer arguments such as `name` and `dtype`.

    Call arguments:
        images: `(B, H, W, C)` or `(H, W, C)` images, float in [0, 1] or `uint8`.
        training: `True` (default) for random views, `False` for the central crop
            resized to `image_size`.

    Returns:
        Float images `(B, height, width, C)` in [0, 1].

    Example:

    >>> augment = keras_simclr.augment.SimCLRAugment(32, preset="cifar", seed=0)
    >>> images = keras.ops.cast(keras.random.randint((8, 32, 32, 3), 0, 256, seed=0), "uint8")
    >>> view_1, view_2 = augment(images), augment(images)
    >>> view_1.shape
    TensorShape([8, 32, 32, 3])
    """

    _READS_UINT8 = True

    def __init__(
        self,
        image_size,
        preset="imagenet",
        color_jitter_strength=None,
        blur=None,
        flip=True,
        seed=None,
        jit_compile=True,
        crop_scale=(0.08, 1.0),
        **kwargs,
    ):
        super().__init__(seed=seed, jit_compile=jit_compile, **kwargs)
        self.image_size = _image_size_pair("image_size", image_size)
        if preset not in _PRESETS:
            raise ValueError(
                f"`preset` must be one of {_PRESETS}. Received: preset={preset!r}"
            )
        self.preset = preset
        if blur is not None and not isinstance(blur, bool):
            raise ValueError(
                f"`blur` must be True, False or None. Received: blur={blur!r}"
            )
        if not isinstance(flip, bool):
            raise ValueError(f"`flip` must be True or False. Received: flip={flip!r}")
        self.color_jitter_strength = color_jitter_strength
        self.blur = blur
        self.flip = flip
        default_strength, color_drop, default_blur = _PRESET_DEFAULTS[preset]
        strength = (
            default_strength if color_jitter_strength is None else color_jitter_strength
        )

        crop_scale = _check_range("crop_scale", crop_scale, 0.0, 1.0, open_lower=True)
        self.crop = RandomResizedCrop(
            *self.image_size,
            scale=crop_scale,
            seed=_sub_seed(seed, 1),
            jit_compile=jit_compile,
            name="crop",
        )
        self.color_jitter = ColorJitter(
            strength=strength,
            probability=0.8,
            seed=_sub_seed(seed, 2),
            jit_compile=jit_compile,
            name="color_jitter",
        )
        self.color_drop = (
            RandomColorDrop(
                0.2,
                seed=_sub_seed(seed, 3),
                jit_compile=jit_compile,
                name="color_drop",
            )
            if color_drop
            else None
        )
        use_blur = default_blur if blur is None else blur
        self.gaussian_blur = (
            RandomGaussianBlur(
                0.5,
                seed=_sub_seed(seed, 4),
                jit_compile=jit_compile,
                name="gaussian_blur",
            )
            if use_blur
            else None
        )

    def _generator_seed(self, seed):
        return _sub_seed(seed, 0)

    def build(self, input_shape):
        output_shape = self.crop.compute_output_shape(input_shape)
        for name, layer in self._stages():
            if not layer.built:
                layer.build(input_shape if name == "crop" else output_shape)
        super().build(input_shape)

    def _stages(self):
        stages = [("crop", self.crop), ("color_jitter", self.color_jitter)]
        if self.color_drop is not None:
            stages.append(("color_drop", self.color_drop))
        if self.gaussian_blur is not None:
            stages.append(("gaussian_blur", self.gaussian_blur))
        return stages

    def _standardize_images(self, images):
        images = super()._standardize_images(images)
        if self.preset == "grayscale" and images.shape[-1] != 1:
            raise ValueError(
                "SimCLRAugment(preset='grayscale') expects 1-channel images. "
                f"Received: shape={tuple(images.shape)}. Use preset='cifar' or "
                "'imagenet' for RGB images."
            )
        return images

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws every stage's parameters.

        Returns:
            `None` when not training, else a dict with the transformations of the
            stages (`"crop"`, `"color_jitter"`, and `"color_drop"` /
            `"gaussian_blur"` when used, see those layers) and `"flip"`, bool `(B,)`.
        """
        if not training:
            return None
        stages = self._stages()
        with _SharedBackend(self.backend, [layer for _, layer in stages]):
            transformation = {
                name: layer.get_random_transformation(
                    data, training=True, seed=_sub_seed(seed, index)
                )
                for index, (name, layer) in enumerate(stages, start=1)
            }
        if self.flip:
            draws = self.backend.random.uniform(
                (self._batch_size(data),),
                seed=self._seed(_sub_seed(seed, 5)),
                dtype=_FLOAT,
            )
            transformation["flip"] = draws < 0.5
        return transformation

    def transform_images(self, images, transformation, training=True):
        stages = self._stages()
        with _SharedBackend(self.backend, [layer for _, layer in stages]):
            if not training or transformation is None:
                return self._output(
                    self.crop._crop_planes(images, None, training=False)
                )
            planes = self.crop._crop_planes(
                images, transformation["crop"], flips=transformation.get("flip")
            )
            return self._transform_crops(planes, transformation)

    def _transform_crops(self, planes, transformation):
        """The stages after the crop (and flip) on planes `(B, C, height, width)`;
        returns images `(B, height, width, C)`."""
        # The stages hand planes to each other; the last one returns images.
        stages = self._stages()[1:]
        # A colour drop followed by the blur runs in the blur's passes.
        gray = None
        if self.color_drop is not None and self.gaussian_blur is not None:
            gray = transformation["color_drop"]["apply"]
            stages = [stage for stage in stages if stage[0] != "color_drop"]
        for index, (name, layer) in enumerate(stages, start=1):
            extra = {"gray": gray} if name == "gaussian_blur" else {}
            planes = layer._transform_planes(
                planes,
                transformation[name],
                channels_last=index == len(stages),
                **extra,
            )
        return self.backend.cast(planes, self.compute_dtype)

    # Images of different sizes. An input pipeline crops each image at its full
    # resolution before batching (`keras_simclr.data.pretraining_dataset`), in three
    # steps: `_draw_crops` per image, one image at a time when the pipeline is
    # seeded (it advances the crop's and the flip's random streams);
    # `_crop_views` per image, in parallel; `_augment_crops` on batches of the
    # crops (the colour and blur streams, as `transform_images` draws them). The
    # crops travel as planes `(C, height, width)`, the layout the stages share.

    def _draw_crops(self, image, num_views):
        """Crop boxes `(V, 4)` and flips `(V,)` of `num_views` views of one image
        `(H, W, C)`, drawn as `get_random_transformation` draws them for a batch."""
        with _SharedBackend(_TENSORFLOW, [self, self.crop]):
            shape = self.backend.core.shape(image)
            crops = {
                "boxes": _sample_crop_boxes(
                    self.backend,
                    self.crop._seed(None),
                    num_views,
                    shape[0],
                    shape[1],
                    self.crop.scale,
                    self.crop.ratio,
                    self.crop.max_attempts,
                )
            }
            if self.flip:
                draws = self.backend.random.uniform(
                    (num_views,), seed=self._seed(None), dtype=_FLOAT
                )
                crops["flip"] = draws < 0.5
        return crops

    def _crop_views(self, image, crops):
        """The views of one image `(H, W, C)` (`uint8` or float in [0, 1]) cut and
        resized as `crops` says: a tuple of planes `(C, height, width)` in [0, 1]."""
        image = self._standardize_images(image)
        flips = crops.get("flip")
        with _SharedBackend(_TENSORFLOW, [self]):
            return tuple(
                _crop_and_resize_one(
                    self.backend,
                    image,
                    crops["boxes"][view],
                    self.image_size,
                    None if flips is None else flips[view],
                )
                for view in range(crops["boxes"].shape[0])
            )

    def _augment_crops(self, planes):
        """Colour jitter, colour drop and blur on a batch of `_crop_views` planes
        `(B, C, height, width)`, each example drawing its own parameters; returns
        images `(B, height, width, C)` in [0, 1]."""
        stages = self._stages()[1:]
        with _SharedBackend(_TENSORFLOW, [self, *(layer for _, layer in stages)]):
            transformation = {
                name: layer.get_random_transformation(planes, training=True)
                for name, layer in stages
            }
            return self._transform_crops(planes, transformation)

    def compute_output_shape(self, input_shape):
        return self.crop.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "preset": self.preset,
                "color_jitter_strength": self.color_jitter_strength,
                "blur": self.blur,
                "flip": self.flip,
                "crop_scale": self.crop.scale,
            }
        )
        return config


# Visualisation ---------------------------------------------------------------------


def plot_views(images, augment, n=8, path="views.png", num_views=2):
    """Writes a PNG grid of images (first column) and random views of them.

    A look at what an augmentation does, as the paper illustrates its operations
    (Section 3): row i shows image i and `num_views` independent calls of `augment`
    on it.

    Args:
        images: `(N, H, W, C)` images (float in [0, 1] or `uint8`), C = 1 or 3.
        augment: a layer or callable making one view of a batch, e.g.
            `SimCLRAugment` (layers are called with `training=True`).
        n: number of images (rows) to show, at most N. Defaults to 8.
        path: file to write. Defaults to `"views.png"`.
        num_views: number of views per image (columns after the original).
            Defaults to 2, a positive pair.

    Returns:
        `path`.

    Example:

    >>> augment = keras_simclr.augment.SimCLRAugment(32, preset="cifar", seed=0)
    >>> images = keras.ops.cast(keras.random.randint((8, 32, 32, 3), 0, 256, seed=0), "uint8")
    >>> keras_simclr.augment.plot_views(images, augment, n=4, path="views.png")
    'views.png'
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plot_views needs matplotlib: `pip install matplotlib` or "
            "`pip install keras-simclr[plot]`."
        ) from error
    n = _check_positive_int("n", n)
    num_views = _check_positive_int("num_views", num_views)
    originals = keras.ops.convert_to_numpy(images)[:n]
    if originals.ndim != 4:
        raise ValueError(
            "plot_views expects a batch of images (N, H, W, C). "
            f"Received: shape={originals.shape}"
        )
    if originals.dtype == "uint8":
        originals = originals.astype("float32") / 255.0
    batch = images[:n]

    def view():
        if isinstance(augment, keras.layers.Layer):
            return augment(batch, training=True)
        return augment(batch)

    columns = [originals] + [
        keras.ops.convert_to_numpy(view()) for _ in range(num_views)
    ]
    rows = len(originals)
    figure = Figure(figsize=(1.6 * (num_views + 1), 1.6 * rows))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, num_views + 1, squeeze=False)
    for row in range(rows):
        for column, shown in enumerate(columns):
            image = shown[row].clip(0.0, 1.0)
            ax = axes[row][column]
            if image.shape[-1] == 1:
                ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("image" if column == 0 else f"view {column}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    return path


def crop_and_flip(image_size, seed=None, scale=(0.08, 1.0)):
    """The fine-tuning augmentation of SimCLR: random resized crop, then a flip.

    Fine-tuning and supervised training use only the geometric part of the
    augmentation (Chen et al., 2020, Appendix B.6; SimCLRv2's `ft` runs): the
    crop of `RandomResizedCrop` (area `scale`, aspect 3/4-4/3, bicubic) and a
    horizontal flip with p = 0.5, per example, in float32 whatever the global
    dtype policy.

    Args:
        image_size: output size, an integer or `(height, width)`.
        seed: integer seed, or `None`.
        scale: range of the crop's area as a fraction of the image.

    Returns:
        A callable mapping `(B, H, W, C)` images (float in [0, 1] or `uint8`) to
        float32 `(B, *image_size, C)` views, for `evaluation.fine_tune(augment=...)`
        or a `tf.data` map.

    Example:

    >>> augment = keras_simclr.augment.crop_and_flip(28, seed=0)
    >>> augment(np.zeros((4, 28, 28, 1), "uint8")).shape
    TensorShape([4, 28, 28, 1])
    """
    height, width = _image_size_pair("image_size", image_size)
    # Two layers called in turn, not a `keras.Sequential`: a model would cast uint8
    # input to float before the crop reads it, losing its [0, 255] scale.
    crop = RandomResizedCrop(
        height, width, scale=scale, seed=_sub_seed(seed, 1), dtype="float32", name="crop"
    )
    flip = keras.layers.RandomFlip(
        "horizontal", seed=_sub_seed(seed, 2), dtype="float32", name="flip"
    )

    def apply(images):
        return flip(crop(images))

    return apply
