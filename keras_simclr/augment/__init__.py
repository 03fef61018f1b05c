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

Modules: `base` (the layer contract, shared by all), `crop` (`RandomResizedCrop`,
`CenterCropResize`), `color` (`ColorJitter`, `RandomColorDrop`), `blur`
(`RandomGaussianBlur`), `compose` (`RandomApply`), `presets` (`SimCLRAugment`,
`crop_and_flip`). `plot_views` lives in `keras_simclr.visualization`.
"""

from keras_simclr.augment.blur import RandomGaussianBlur
from keras_simclr.augment.color import ColorJitter
from keras_simclr.augment.color import RandomColorDrop
from keras_simclr.augment.compose import RandomApply
from keras_simclr.augment.crop import CenterCropResize
from keras_simclr.augment.crop import RandomResizedCrop
from keras_simclr.augment.presets import SimCLRAugment
from keras_simclr.augment.presets import crop_and_flip

# Names that moved to `keras_simclr.visualization`, still importable from here.
_MOVED_TO_VISUALIZATION = ("plot_views",)


def __getattr__(name):
    # Imported on first use: `keras_simclr.visualization` imports this package.
    if name in _MOVED_TO_VISUALIZATION:
        from keras_simclr import visualization

        return getattr(visualization, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
