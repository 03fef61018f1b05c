"""Pictures: views of the augmentation, training curves, a 2-D embedding of h.

Each function writes a PNG and returns its path; matplotlib is an optional
dependency (`pip install keras-simclr[plot]`), imported when a picture is drawn.
Figures are drawn without pyplot, so no GUI backend or global state is touched.
"""

import csv
import io
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from keras_simclr.evaluation.features import _check_data
from keras_simclr.evaluation.features import _check_labels
from keras_simclr.evaluation.features import _extract
from keras_simclr.images import to_unit_float
from keras_simclr import checks
from keras_simclr import files

_LOGGER = logging.getLogger(__name__)

_PLOT_EXTRA = "pip install keras-simclr[plot]"
_DEFAULT_CURVES = ("loss", "contrastive_accuracy", "probe_accuracy")
_MAX_LEGEND_CLASSES = 20


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
    n = checks.positive_int("n", n)
    num_views = checks.positive_int("num_views", num_views)
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
    _save_figure(figure, path)
    return path


def plot_training_curves(history, path, metrics=_DEFAULT_CURVES):
    """Plots training curves to a PNG, one panel per metric, train and validation.

    Shows how pretraining went: the NT-Xent loss, the contrastive accuracy (how often
    the positive ranks first among the 2N - 1 candidates) and the online linear
    probe's accuracy; each panel holds the training curve and, when logged,
    the `val_` curve.

    Args:
        history: a `keras.callbacks.History` (what `fit` returns), a dict of
            per-epoch lists, or the path of a CSV written by `keras.callbacks.CSVLogger`
            or by the job every few steps (columns `step`, fractional `epoch`, ...).
        path: the PNG to write (parent directories are created).
        metrics: names to plot; those absent from `history` are skipped.

    Returns:
        `path`.

    Example:

    >>> plot_training_curves({"loss": [5.2, 4.1, 3.7]}, "curves.png")
    'curves.png'
    """
    figure_class = _figure_class()
    logs = _history_logs(history)
    present = [m for m in metrics if _has_values(logs, m) or _has_values(logs, f"val_{m}")]
    if not present:
        raise ValueError(
            f"`history` holds none of the metrics {list(metrics)}. Received keys: "
            f"{sorted(k for k in logs if k != 'epoch')}. Pass `metrics=` to choose others."
        )
    figure = figure_class(figsize=(4.5 * len(present), 3.5), layout="constrained")
    axes = figure.subplots(1, len(present), squeeze=False)[0]
    if "step" in logs:
        # Rows every few steps (the job's history.csv), at fractional epochs; a
        # resumed run may repeat a step: its last row counts.
        logs = _last_row_per_step(logs)
        x_offset = 0.0
    else:
        x_offset = 1.0  # per-epoch logs: the value at the end of epoch i + 1
    for axis, name in zip(axes, present):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if not _has_values(logs, key):
                continue
            values = np.asarray(logs[key], np.float64)
            epochs = np.asarray(logs.get("epoch", range(values.size)), np.float64) + x_offset
            # Validation runs at epoch ends only: its other rows are empty.
            finite = np.isfinite(values)
            epochs, values = epochs[: values.size][finite], values[finite]
            marker = "." if values.size <= 50 else None
            axis.plot(epochs, values, marker=marker, label=label)
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(_integer_locator())
        axis.grid(alpha=0.3)
        axis.legend()
    _save_figure(figure, path)
    return path


def plot_embedding(
    encoder_or_features,
    data,
    path,
    method="pca",
    max_points=2000,
    *,
    preprocess=None,
    batch_size=256,
    class_names=None,
    seed=0,
):
    """Plots a 2-D embedding of the representation, coloured by class, to a PNG.

    A picture of what linear evaluation measures: with a good representation h the
    classes form separate clusters (the paper's appendix shows a t-SNE of h).
    `"pca"` projects on the two leading principal components (fast, deterministic);
    `"tsne"` needs scikit-learn; `"auto"` uses t-SNE when scikit-learn is installed
    and PCA otherwise.

    Args:
        encoder_or_features: a `keras.Model` mapping [0, 1] images to features, or
            precomputed features of shape `(n, dim)`.
        data: with an encoder, `(images, labels)` NumPy arrays or a `tf.data.Dataset`
            of batches; with features, their labels `(n,)`.
        path: the PNG to write (parent directories are created).
        method: `"pca"`, `"tsne"` or `"auto"`.
        max_points: at most this many points are drawn (a random subset by `seed`).
        preprocess: optional callable applied to the [0, 1] images before the encoder.
        batch_size: batch size of feature extraction for NumPy input.
        class_names: optional sequence of names indexed by class id, for the legend.
        seed: seed of the subsample and of t-SNE.

    Returns:
        `path`.

    Example:

    >>> features = np.random.randn(300, 16).astype("float32")
    >>> labels = np.arange(300) % 3
    >>> plot_embedding(features, labels, "embedding.png")
    'embedding.png'
    """
    if method not in ("pca", "tsne", "auto"):
        raise ValueError(
            f'`method` must be "pca", "tsne" or "auto". Received: method={method!r}'
        )
    checks.positive_int("max_points", max_points)
    figure_class = _figure_class()
    tsne_class = _tsne_class(method)
    if isinstance(encoder_or_features, keras.layers.Layer):
        data = _check_data(data, "data")
        checks.positive_int("batch_size", batch_size)
        features, labels = _extract(encoder_or_features, data, preprocess, batch_size)
    else:
        features = np.asarray(encoder_or_features, np.float32)
        labels = _check_labels(data, "data")
        if features.ndim != 2 or features.shape[0] != labels.size:
            raise ValueError(
                "Precomputed features must have shape (n, dim) with one label each. "
                f"Received: features of shape {features.shape}, {labels.size} labels"
            )
    if features.shape[1] < 2:
        raise ValueError(
            f"A 2-D embedding needs features of dimension >= 2. Received: {features.shape[1]}"
        )
    if labels.size > max_points:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(labels.size, max_points, replace=False))
        features, labels = features[keep], labels[keep]

    if tsne_class is None:
        centred = features.astype(np.float64) - features.mean(axis=0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        points = centred @ components[:2].T
        title = "PCA of h"
    else:
        perplexity = min(30.0, max(1.0, (labels.size - 1) / 3))
        points = tsne_class(
            n_components=2, init="pca", perplexity=perplexity, random_state=seed
        ).fit_transform(features)
        title = "t-SNE of h"

    figure = figure_class(figsize=(6.5, 5.5), layout="constrained")
    axis = figure.subplots()
    classes = np.unique(labels)
    if classes.size <= _MAX_LEGEND_CLASSES:
        palette = _palette("tab10" if classes.size <= 10 else "tab20")
        for position, label in enumerate(classes):
            mask = labels == label
            name = class_names[label] if class_names is not None else str(label)
            axis.scatter(
                points[mask, 0], points[mask, 1], s=6, color=palette(position), label=name
            )
        axis.legend(title="class", markerscale=2.5, fontsize="small", loc="best")
    else:
        image = axis.scatter(points[:, 0], points[:, 1], s=4, c=labels, cmap="turbo")
        figure.colorbar(image, ax=axis, label="class")
    axis.set_title(f"{title} ({labels.size} points)")
    axis.set_xticks([])
    axis.set_yticks([])
    _save_figure(figure, path)
    return path


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            f"Plotting needs matplotlib, an optional dependency: {_PLOT_EXTRA}"
        ) from error
    return Figure


def _integer_locator():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _palette(name):
    from matplotlib import colormaps

    return colormaps[name]


def _tsne_class(method):
    if method == "pca":
        return None
    try:
        from sklearn.manifold import TSNE
    except ImportError as error:
        if method == "tsne":
            raise ImportError(
                "method='tsne' needs scikit-learn: pip install scikit-learn "
                "(or use method='pca')."
            ) from error
        _LOGGER.info("scikit-learn is not installed; plotting PCA instead of t-SNE.")
        return None
    return TSNE


def _save_figure(figure, path):
    # Figures are drawn without pyplot, so no GUI backend or global state is touched;
    # the bytes go through tf.io.gfile so a gs:// model_dir works too.
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    files.write_atomic(path, buffer.getvalue())


def _last_row_per_step(logs):
    """The rows of a per-step log by step, keeping the last row of a repeated step."""
    last = {int(step): index for index, step in enumerate(logs["step"])}
    keep = [last[step] for step in sorted(last)]
    return {key: [values[i] for i in keep] for key, values in logs.items()}


def _history_logs(history):
    if isinstance(history, keras.callbacks.History):
        return {key: list(values) for key, values in history.history.items()}
    if isinstance(history, dict):
        return {key: list(np.ravel(values)) for key, values in history.items()}
    if isinstance(history, (str, os.PathLike)):
        return _read_csv_log(os.fspath(history))
    raise ValueError(
        "`history` must be a `keras.callbacks.History`, a dict of per-epoch lists or "
        f"the path of a CSVLogger file. Received: history of type {type(history).__name__}"
    )


def _read_csv_log(path):
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    if not text.strip():
        raise ValueError(f"The training log {path!r} is empty.")
    try:
        # CSVLogger's `separator` may have been changed from ",".
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    logs = {}
    for row in csv.DictReader(io.StringIO(text), dialect=dialect):
        for key, value in row.items():
            logs.setdefault(key, []).append(_to_float(value))
    return logs


def _to_float(value):
    # CSVLogger writes "NA" for metrics missing in an epoch (e.g. val_ before
    # validation runs) and a quoted list for non-scalar logs: neither is a point.
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _has_values(logs, key):
    values = logs.get(key)
    return values is not None and np.isfinite(np.asarray(values, np.float64)).any()
