"""Pictures: views of the augmentation, training curves, a 2-D embedding of h.

Each function writes a PNG and returns its path; matplotlib is an optional
dependency (`pip install keras-simclr[plot]`), imported when a picture is drawn.
Figures are drawn without pyplot, so no GUI backend or global state is touched.
"""

import keras

from keras_simclr.augment.base import _check_positive_int
from keras_simclr.images import to_unit_float


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
    >>> keras_simclr.visualization.plot_views(images, augment, n=4, path="views.png")
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
    originals = keras.ops.convert_to_numpy(to_unit_float(originals))
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
