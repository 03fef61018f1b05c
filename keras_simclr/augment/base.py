"""The contract of keras_simclr's augmentation layers, and what they share.

Every layer of `keras_simclr.augment` is an `_ImageLayer`, a Keras
`BaseImagePreprocessingLayer` (the class behind `keras.layers.RandomFlip`) that:

- validates its arguments in `__init__` (the `_check_*` helpers below), with messages
  that name the argument and what was received, and returns every constructor
  argument from `get_config`; it registers with `_register`, under the package
  `"keras_simclr"` and its class name, so that saved `.keras` files find it;
- takes a batch `(B, H, W, C)` or one image `(H, W, C)` with 1 or 3 channels, float
  in [0, 1] or `uint8` in [0, 255] (`keras_simclr.images.to_unit_float`, unless the
  layer sets `_READS_UINT8` and reads the bytes itself), and returns float images in
  [0, 1] in its compute dtype;
- splits drawing the random parameters of a batch,
  `get_random_transformation(images, training=True, seed=None)` (a dict of per-example
  tensors, or `None` when not training), from applying them,
  `transform_images(images, transformation, training=True)`. All randomness comes
  from `self._seed(seed)`: the layer's `_ReplicaSeedGenerator` (different views on
  every replica of a `tf.distribute` strategy), or the seed of the call.

Batched planes, the contract of the fused pipeline:

- Inside a pipeline the stages hand each other float32 *planes* `(B, C, H, W)` in
  [0, 1]: per-pixel colour operations are then elementwise operations between
  contiguous planes. A stage implements
  `_transform_planes(planes, transformation, channels_last=False)`: it maps planes to
  planes of the same shape, clipped to [0, 1] (with `channels_last`, to images
  `(B, H, W, C)`, as the last stage of a pipeline returns them), reading its random
  parameters from `transformation` only. `_ImageLayer.transform_images` runs a stage
  alone (images -> planes -> stage -> images); `SimCLRAugment` runs its stages back
  to back on the planes of its crops, and `RandomApply` around a stage is a stage.
- The per-pixel work of a stage goes in kernels: module-level functions
  `kernel(backend, *tensors, **static)` of a backend namespace (`backend.numpy`,
  `backend.cast`, ...), tensors with static shapes after the batch axis, and
  Python scalars as keyword arguments, called as `self._kernel(kernel)(...)`. On
  TensorFlow each kernel and set of static arguments is compiled with XLA once per
  process (`_compiled`, one cache shared by every layer), elsewhere it runs op by op
  (`jit_compile=False` too): both must give the same views.
- A stage that changes only the examples it selects (with a probability) can run its
  kernels on that subset with `_on_subset`.

`docs/architecture.md` walks through adding a stage (e.g. solarisation) to
`SimCLRAugment`; `tests/augment/test_compose.py` does it.
"""

import functools
import importlib
import math

import keras

from keras_simclr import distribute
from keras_simclr.images import to_unit_float
from keras_simclr import checks

# Keras' image preprocessing base class is not exported under `keras.layers`; it gives
# these layers the tf.data-safe backend switching and the single-image handling of
# Keras' own RandomFlip, RandomGrayscale and RandomColorJitter.
from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (  # noqa: E501
    BaseImagePreprocessingLayer,
)
from keras.src.utils import backend_utils

_PACKAGE = "keras_simclr"
_FLOAT = "float32"

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
        self.seed = checks.seed(seed)
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
            not self.built
            and keras.backend.backend() != "tensorflow"
            and not isinstance(images, keras.KerasTensor)
            and backend_utils.in_tf_graph()
        ):
            # Keras' other backends do not read the shape of a TensorFlow tensor
            # when they build a layer inside tf.data (they pass None): build here.
            self.build(tuple(images.shape))
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
            return to_unit_float(images)
        # Inside tf.data the tensors are TensorFlow's whatever the Keras backend.
        in_tf_graph = backend_utils.in_tf_graph()
        if in_tf_graph:
            self.backend.set_backend("tensorflow")
        try:
            # Not a compiled kernel: XLA multiplies by the reciprocal of 255 instead,
            # off in the last bit for half of the values, and a uint8 image should
            # give exactly the views of its float copy divided by 255.
            return to_unit_float(images, backend=self.backend)
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


def _is_stage(layer):
    """Whether `layer` implements `_transform_planes`, the batched-planes contract."""
    return (
        isinstance(layer, _ImageLayer)
        and type(layer)._transform_planes is not _ImageLayer._transform_planes
    )


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

