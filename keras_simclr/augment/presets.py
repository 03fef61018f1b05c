"""SimCLR's augmentation as one layer, and the fine-tuning augmentation.

`SimCLRAugment` composes the stages of `crop`, `color` and `blur` as the paper does
(Section 3, Appendix A), with the presets of its ImageNet and CIFAR-10 runs;
`crop_and_flip` is the geometric part alone, for fine-tuning (Appendix B.6).
"""

import keras

from keras_simclr.augment.base import _FLOAT
from keras_simclr.augment.base import _TENSORFLOW
from keras_simclr.augment.base import _check_range
from keras_simclr.augment.base import _image_size_pair
from keras_simclr.augment.base import _ImageLayer
from keras_simclr.augment.base import _register
from keras_simclr.augment.base import _sub_seed
from keras_simclr.augment.blur import RandomGaussianBlur
from keras_simclr.augment.color import ColorJitter
from keras_simclr.augment.color import RandomColorDrop
from keras_simclr.augment.compose import _SharedBackend
from keras_simclr.augment.crop import RandomResizedCrop
from keras_simclr.augment.crop import _crop_and_resize_one
from keras_simclr.augment.crop import _sample_crop_boxes
from keras_simclr import checks

_PRESETS = ("imagenet", "cifar", "grayscale")

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
        color_jitter_probability: probability of jittering an example's colours.
            Defaults to the paper's 0.8.
        color_drop_probability: probability of turning an example gray (presets
            with colour drop). Defaults to the paper's 0.2.
        blur_probability: probability of blurring an example (with blur). Defaults
            to the paper's 0.5.
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
        color_jitter_probability=0.8,
        color_drop_probability=0.2,
        blur_probability=0.5,
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
        self.color_jitter_probability = checks.probability(
            "color_jitter_probability", color_jitter_probability
        )
        self.color_drop_probability = checks.probability(
            "color_drop_probability", color_drop_probability
        )
        self.blur_probability = checks.probability("blur_probability", blur_probability)
        self.crop = RandomResizedCrop(
            *self.image_size,
            scale=crop_scale,
            seed=_sub_seed(seed, 1),
            jit_compile=jit_compile,
            name="crop",
        )
        self.color_jitter = ColorJitter(
            strength=strength,
            probability=self.color_jitter_probability,
            seed=_sub_seed(seed, 2),
            jit_compile=jit_compile,
            name="color_jitter",
        )
        self.color_drop = (
            RandomColorDrop(
                self.color_drop_probability,
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
                self.blur_probability,
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
        """The stages in the order they run, as `(name, layer)`: the crop, then
        layers that follow the batched-planes contract (`augment.base`), whose
        transformations `get_random_transformation` draws under their names.

        A subclass (or a new option) adds a stage by creating it in `__init__`
        with a seed of its own (`_sub_seed(seed, 6)` or 7; 0 to 5 are taken) and
        listing it here; the blur takes in a colour drop just before it.
        """
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
            # With a seed, stage k (from 1) draws with sub-seed k; 5 is the flip's.
            transformation = {
                name: layer.get_random_transformation(
                    data, training=True, seed=_sub_seed(seed, index + (index >= 5))
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
                "color_jitter_probability": self.color_jitter_probability,
                "color_drop_probability": self.color_drop_probability,
                "blur_probability": self.blur_probability,
            }
        )
        return config


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
