"""Gaussian blur with a random sigma per example.

SimCLR blurs ImageNet views with probability 0.5 (Appendix A); the blur is
separable, one pass per axis over the whole batch, on the subset of examples that
are blurred, and takes in the colour drop that precedes it in `SimCLRAugment`.
"""

from keras_simclr.augment.base import _FLOAT
from keras_simclr.augment.base import _broadcast
from keras_simclr.augment.base import _channels_last
from keras_simclr.augment.base import _check_range
from keras_simclr.augment.base import _ImageLayer
from keras_simclr.augment.base import _register
from keras_simclr.augment.color import _color_drop_kernel
from keras_simclr.augment.color import _drop_color
from keras_simclr import checks


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
        self.probability = checks.probability("probability", probability)
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
