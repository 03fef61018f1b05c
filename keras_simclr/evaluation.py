"""Evaluation protocols for learned representations.

A representation is judged by what a simple classifier can do with it. This module
holds the protocols of the SimCLR paper (Chen et al., ICML 2020) and the monitor most
self-supervised libraries report, usable on any encoder: ours, a `keras.applications`
model with `include_top=False, pooling="avg"`, or a randomly initialised baseline.

- `linear_eval`: a linear classifier on frozen features h (paper Appendix B.6).
- `knn_eval`: a cosine-similarity, temperature-weighted k-nearest-neighbour vote.
- `fine_tune`: the encoder (optionally with the first projection-head layer) trained
  on a class-balanced labelled subset (paper Section 6; SimCLRv2 Section 3).
- `supervised_baseline`: the same network trained from scratch with labels.

Each returns an `EvaluationResult`; `write_results` keeps them in `results.json`,
`format_table` prints them, `plot_training_curves` and `plot_embedding` draw PNGs.

Data is either a tuple `(images, labels)` of NumPy arrays or a `tf.data.Dataset` of
`(images, labels)` batches. Images are float32 in [0, 1] or uint8 in [0, 255] (converted
to [0, 1] floats before `preprocess`); labels are integer class ids.
"""

import csv
import dataclasses
import functools
import io
import json
import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from scipy import optimize
from threadpoolctl import threadpool_limits

_LOGGER = logging.getLogger(__name__)

_PLOT_EXTRA = "pip install keras-simclr[plot]"
_DEFAULT_L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
_DEFAULT_CURVES = ("loss", "contrastive_accuracy", "probe_accuracy")
_MAX_LEGEND_CLASSES = 20


# --------------------------------------------------------------------------- results


@keras.saving.register_keras_serializable(package="keras_simclr")
@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """The outcome of one evaluation protocol on one dataset.

    One record per (dataset, protocol) pair, the unit the paper's tables report
    (Tables 6-8: linear evaluation, semi-supervised fine-tuning). `write_results` merges
    records into a `results.json` file, `format_table` prints them.

    Args:
        dataset: name of the dataset the numbers are on.
        protocol: the protocol and the settings that distinguish it, e.g.
            `"linear (lbfgs)"` or `"fine-tune (10% labels)"`.
        accuracy: top-1 test accuracy in [0, 1].
        top5_accuracy: top-5 test accuracy in [0, 1] (top-`num_classes` when there
            are fewer than 5 classes, so 1.0 then).
        num_train: number of labelled training examples the protocol used.
        num_test: number of test examples.
        epochs: training epochs, or `None` for protocols that do not train by
            epochs (kNN, L-BFGS).
        seconds: wall-clock time of the whole protocol, feature extraction included.
        details: protocol-specific settings and diagnostics (JSON-serialisable).
        model: the trained classifier for `fine_tune` and `supervised_baseline`
            (a `keras.Sequential` whose first layer is the trained encoder copy),
            otherwise `None`. Not part of `to_dict()` nor of the config.

    Example:

    >>> result = EvaluationResult("cifar10", "knn (k=200, T=0.1)", 0.9, 0.99, 50000, 10000)
    >>> EvaluationResult.from_config(result.get_config()) == result
    True
    """

    dataset: str
    protocol: str
    accuracy: float
    top5_accuracy: float
    num_train: int
    num_test: int
    epochs: int | None = None
    seconds: float = 0.0
    details: dict = dataclasses.field(default_factory=dict)
    model: keras.Model | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        for name in ("accuracy", "top5_accuracy"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"`{name}` must be a fraction in [0, 1]. Received: {name}={value}"
                )

    def to_dict(self):
        """Returns the record as a JSON-serialisable dict (without `model`)."""
        return {
            field.name: _jsonable(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.name != "model"
        }

    def get_config(self):
        return self.to_dict()

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def write_results(results, path):
    """Writes evaluation records to a JSON file, merging with what it already holds.

    A record replaces an earlier one with the same `(dataset, protocol)`, so re-running
    an evaluation updates its line; other records are kept in their order and new ones
    are appended. The file is replaced atomically; `path` may be local or any
    filesystem `tf.io.gfile` supports (e.g. `gs://` for a TPU `model_dir`).

    Args:
        results: an `EvaluationResult` or an iterable of them.
        path: the file to write, conventionally `<model_dir>/results.json`.

    Returns:
        The list of all records now in the file.

    Example:

    >>> result = EvaluationResult("toy", "knn (k=5, T=0.1)", 1.0, 1.0, 10, 10)
    >>> records = write_results(result, "results.json")
    """
    results = _check_results(results)
    merged = read_results(path) if tf.io.gfile.exists(path) else []
    for result in results:
        key = (result.dataset, result.protocol)
        positions = [i for i, old in enumerate(merged) if (old.dataset, old.protocol) == key]
        if positions:
            merged[positions[0]] = result
        else:
            merged.append(result)
    text = json.dumps({"results": [r.to_dict() for r in merged]}, indent=2) + "\n"
    _write_bytes(path, text.encode("utf-8"))
    return merged


def read_results(path):
    """Reads the records a `write_results` call stored in `path`.

    Args:
        path: a `results.json` file.

    Returns:
        A list of `EvaluationResult`.
    """
    with tf.io.gfile.GFile(path, "r") as f:
        content = json.load(f)
    return [EvaluationResult.from_config(record) for record in content["results"]]


def format_table(results):
    """Formats evaluation records as a plain-text table, one row per record.

    Args:
        results: an `EvaluationResult` or an iterable of them.

    Returns:
        The table as a string (accuracies in percent), ready to print.

    Example:

    >>> print(format_table(EvaluationResult("toy", "linear (lbfgs)", 0.9, 1.0, 10, 10)))
    dataset  protocol        top-1 %  top-5 %  train  test  epochs  time
    -------  --------------  -------  -------  -----  ----  ------  ----
    toy      linear (lbfgs)    90.00   100.00     10    10       -  0.0s
    """
    results = _check_results(results)
    header = ("dataset", "protocol", "top-1 %", "top-5 %", "train", "test", "epochs", "time")
    rows = [
        (
            r.dataset,
            r.protocol,
            f"{100 * r.accuracy:.2f}",
            f"{100 * r.top5_accuracy:.2f}",
            str(r.num_train),
            str(r.num_test),
            "-" if r.epochs is None else str(r.epochs),
            f"{r.seconds:.1f}s",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    # Text columns read best left-aligned, numbers right-aligned.
    align = ["<", "<", ">", ">", ">", ">", ">", ">"]
    lines = [
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- features


def extract_features(encoder, data, preprocess=None, batch_size=256):
    """Runs an encoder once over a dataset in inference mode.

    Features are extracted once and cached, as in the paper's linear evaluation
    (Appendix B.6): the encoder is frozen and called with `training=False`, so batch
    normalisation uses its moving statistics and dropout is off.

    Args:
        encoder: a `keras.Model` (or layer) mapping a float32 image batch in [0, 1]
            to 2-D features `h` of shape `(batch, dim)`.
        data: `(images, labels)` NumPy arrays or a `tf.data.Dataset` of
            `(images, labels)` batches. uint8 images are scaled to [0, 1].
        preprocess: optional callable applied to the [0, 1] image batch before the
            encoder, e.g. `keras_simclr.augment.CenterCropResize`.
        batch_size: batch size for NumPy input (a dataset keeps its own batches).

    Returns:
        A tuple `(features, labels)`: float32 `(n, dim)` and int64 `(n,)` arrays in
        the order of `data`.

    Example:

    >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> images = np.random.rand(10, 8, 8, 1).astype("float32")
    >>> h, y = extract_features(encoder, (images, np.arange(10) % 2))
    >>> h.shape
    (10, 64)
    """
    _check_encoder(encoder)
    data = _check_data(data, "data")
    _check_positive_int(batch_size, "batch_size")
    return _extract(encoder, data, preprocess, batch_size)


# --------------------------------------------------------------------------- linear


def linear_eval(
    encoder,
    train_data,
    test_data,
    solver="lbfgs",
    *,
    preprocess=None,
    batch_size=256,
    l2_grid=_DEFAULT_L2_GRID,
    validation_fraction=0.2,
    max_iterations=1000,
    epochs=90,
    learning_rate=None,
    seed=0,
    dataset_name="unnamed",
):
    """Linear evaluation: a linear classifier trained on frozen features.

    The paper's protocol (Appendix B.6): the encoder is frozen, features h are
    extracted once in inference mode (with centre-crop preprocessing, pass it as
    `preprocess`), and a linear classifier is trained on them. Features are
    standardised with the training set's mean and standard deviation first, an
    affine change that leaves the family of linear classifiers unchanged and makes
    both solvers well conditioned.

    Two solvers:
    - `"lbfgs"`: multinomial logistic regression with an L2 penalty, solved to
      convergence with L-BFGS (deterministic, fast on CPU). The penalty is the one
      of `l2_grid` with the best accuracy (then the lowest cross-entropy) on a
      class-stratified validation split of the training set (drawn by `seed`); the
      classifier is then refit on all training data. A single-value grid skips
      the validation. Every iteration reads the features twice: for ImageNet-sized
      feature sets prefer `"sgd"`.
    - `"sgd"`: the paper's optimiser on the cached features: a dense layer trained
      with Nesterov momentum 0.9, learning rate 0.1 x batch/256 with cosine decay,
      no weight decay, for `epochs` epochs.

    Args:
        encoder: a `keras.Model` mapping [0, 1] image batches to features `(batch, dim)`,
            or `None` when the data already hold features: `(features, labels)` NumPy
            arrays from `extract_features` (extract once, evaluate several ways).
        train_data: `(images, labels)` NumPy arrays or a `tf.data.Dataset` of batches.
        test_data: the same, for the reported accuracy.
        solver: `"lbfgs"` or `"sgd"`.
        preprocess: optional callable applied to the [0, 1] images before the encoder.
        batch_size: batch size of feature extraction (NumPy input) and of the SGD solver.
        l2_grid: L2 strengths tried by `"lbfgs"` (penalty `0.5 * l2 * |W|^2` added to
            the mean cross-entropy).
        validation_fraction: fraction of each class held out to choose the L2 strength.
        max_iterations: L-BFGS iteration budget per fit.
        epochs: SGD epochs.
        learning_rate: SGD learning rate; defaults to `0.1 * batch_size / 256`.
        seed: seed of the validation split and of the SGD shuffling.
        dataset_name: name stored in the result.

    Returns:
        An `EvaluationResult` with protocol `"linear (lbfgs)"` or `"linear (sgd)"`.

    Example:

    >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> images = np.random.rand(100, 8, 8, 1).astype("float32")
    >>> labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    >>> result = linear_eval(encoder, (images, labels), (images, labels))
    """
    start = time.perf_counter()
    _check_encoder_or_features(encoder)
    train_data = _check_data(train_data, "train_data")
    test_data = _check_data(test_data, "test_data")
    if solver not in ("lbfgs", "sgd"):
        raise ValueError(f'`solver` must be "lbfgs" or "sgd". Received: solver={solver!r}')
    _check_positive_int(batch_size, "batch_size")
    if solver == "lbfgs":
        l2_grid = tuple(float(value) for value in l2_grid)
        if not l2_grid or min(l2_grid) < 0:
            raise ValueError(
                "`l2_grid` must be a non-empty sequence of strengths >= 0. "
                f"Received: l2_grid={l2_grid}"
            )
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(
                "`validation_fraction` must be in (0, 1). "
                f"Received: validation_fraction={validation_fraction}"
            )
        _check_positive_int(max_iterations, "max_iterations")
    else:
        _check_positive_int(epochs, "epochs")
        learning_rate = _default_learning_rate(learning_rate, 0.1, batch_size)

    train_h, train_y = _features(encoder, train_data, preprocess, batch_size)
    test_h, test_y = _features(encoder, test_data, preprocess, batch_size)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    if np.unique(train_y).size < 2:
        raise ValueError("`train_data` must hold at least 2 classes for a classifier.")
    mean, std = _standardisation(train_h)
    train_h = (train_h - mean) / std
    test_h = (test_h - mean) / std

    if solver == "lbfgs":
        params, details = _fit_logistic_with_validation(
            train_h, train_y, num_classes, l2_grid, validation_fraction, max_iterations, seed
        )
        scores = _logistic_logits(params, test_h, num_classes)
        epochs_run = None
    else:
        classifier, history = _fit_linear_sgd(
            train_h, train_y, num_classes, epochs, batch_size, learning_rate, seed
        )
        scores = np.asarray(classifier.predict(test_h, batch_size=batch_size, verbose=0))
        details = {
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "final_train_loss": history.history["loss"][-1],
        }
        epochs_run = epochs
    details.update(solver=solver, feature_dim=int(train_h.shape[1]))
    return EvaluationResult(
        dataset=dataset_name,
        protocol=f"linear ({solver})",
        accuracy=_top_k_accuracy(scores, test_y, 1),
        top5_accuracy=_top_k_accuracy(scores, test_y, 5),
        num_train=int(train_y.size),
        num_test=int(test_y.size),
        epochs=epochs_run,
        seconds=time.perf_counter() - start,
        details=details,
    )


def _standardisation(features):
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    # Constant features (e.g. dead ReLU units) carry no information; leave them at 0.
    std = np.where(std > 1e-6, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def _logistic_objective(params, features, labels, num_classes, l2):
    """Mean multinomial cross-entropy + 0.5 * l2 * |W|^2 and its gradient.

    Parameters are float64 (what L-BFGS works in); the large products run in the
    features' float32, the softmax and the sums in float64.
    """
    dim = features.shape[1]
    weights = params[: dim * num_classes].reshape(dim, num_classes)
    bias = params[dim * num_classes :]
    logits = (features @ weights.astype(features.dtype)).astype(np.float64) + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(logits).sum(axis=1))
    rows = np.arange(labels.size)
    loss = np.mean(log_normaliser - logits[rows, labels]) + 0.5 * l2 * np.sum(weights**2)
    delta = np.exp(logits - log_normaliser[:, None])
    delta[rows, labels] -= 1.0
    delta /= labels.size
    grad_weights = (features.T @ delta.astype(features.dtype)).astype(np.float64)
    grad_weights += l2 * weights
    return loss, np.concatenate([grad_weights.ravel(), delta.sum(axis=0)])


def _fit_logistic(features, labels, num_classes, l2, max_iterations, initial=None):
    size = (features.shape[1] + 1) * num_classes
    initial = np.zeros(size) if initial is None else initial
    # L-BFGS-B makes many tiny BLAS calls per iteration; with BLAS threads competing
    # for the cores with TensorFlow's they ran 15x slower here (measured). The large
    # products of the objective are memory-bound, so one thread costs them little.
    with threadpool_limits(limits=1, user_api="blas"):
        solution = optimize.minimize(
            _logistic_objective,
            initial,
            args=(features, labels, num_classes, l2),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iterations},
        )
    return solution.x, solution


def _logistic_logits(params, features, num_classes):
    dim = features.shape[1]
    weights = params[: dim * num_classes].reshape(dim, num_classes)
    bias = params[dim * num_classes :]
    return features @ weights.astype(np.float32) + bias.astype(np.float32)


def _fit_logistic_with_validation(
    features, labels, num_classes, l2_grid, validation_fraction, max_iterations, seed
):
    if len(set(l2_grid)) == 1:
        params, solution = _fit_logistic(
            features, labels, num_classes, l2_grid[0], max_iterations
        )
        return params, {
            "l2": l2_grid[0],
            "iterations": int(solution.nit),
            "converged": bool(solution.success),
        }
    fit_idx, val_idx = _stratified_split(labels, validation_fraction, seed)
    if val_idx.size == 0:
        raise ValueError(
            "The validation split is empty: `validation_fraction` of each class rounds "
            "to 0 examples. Pass more training data, a larger `validation_fraction`, "
            "or a single-value `l2_grid` (which needs no validation split)."
        )
    validation = {}
    best_l2, best_key, best_params = None, None, None
    params = None
    # From strong to weak regularisation, each fit warm-started from the previous
    # one: the strong ones converge in a few iterations and lead the way.
    for l2 in sorted(set(l2_grid), reverse=True):
        params, _ = _fit_logistic(
            features[fit_idx], labels[fit_idx], num_classes, l2, max_iterations, params
        )
        scores = _logistic_logits(params, features[val_idx], num_classes)
        accuracy = _top_k_accuracy(scores, labels[val_idx], 1)
        validation[repr(l2)] = accuracy
        # Accuracy decides; the validation cross-entropy breaks ties, which are
        # common on easy problems where every strength is perfect.
        key = (accuracy, -_cross_entropy(scores, labels[val_idx]))
        if best_key is None or key > best_key:
            best_l2, best_key, best_params = l2, key, params
    params, solution = _fit_logistic(
        features, labels, num_classes, best_l2, max_iterations, best_params
    )
    details = {
        "l2": best_l2,
        "validation_accuracy": validation,
        "iterations": int(solution.nit),
        "converged": bool(solution.success),
    }
    return params, details


def _cross_entropy(logits, labels):
    logits = logits.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(logits).sum(axis=1))
    return float(np.mean(log_normaliser - logits[np.arange(labels.size), labels]))


def _stratified_split(labels, fraction, seed):
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        # Keep at least one example of each class for fitting.
        count = min(int(math.floor(fraction * members.size + 0.5)), members.size - 1)
        held_out.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held_out))
    return np.setdiff1d(np.arange(labels.size), held_out), held_out


def _fit_linear_sgd(features, labels, num_classes, epochs, batch_size, learning_rate, seed):
    steps_per_epoch = math.ceil(labels.size / batch_size)
    classifier = keras.Sequential(
        [
            keras.Input((features.shape[1],)),
            # Zero initialisation: the problem is convex, and the result is then
            # determined by the data order alone (seeded below).
            keras.layers.Dense(num_classes, kernel_initializer="zeros", dtype="float32"),
        ]
    )
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=epochs * steps_per_epoch
    )
    classifier.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices((features, labels))
        .shuffle(labels.size, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    history = classifier.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
    return classifier, history


# --------------------------------------------------------------------------- kNN


def knn_eval(
    encoder,
    train_data,
    test_data,
    k=200,
    temperature=0.1,
    *,
    preprocess=None,
    batch_size=256,
    chunk_size=256,
    dataset_name="unnamed",
):
    """Weighted k-nearest-neighbour classification on l2-normalised features.

    The monitor most self-supervised libraries report next to the paper's linear
    evaluation (Wu et al., 2018, the instance-discrimination paper SimCLR builds on):
    no training, so it measures the representation alone. Features h of the training
    and test sets are l2-normalised; each test example takes its `k` most
    cosine-similar training examples, and each neighbour votes for its class with
    weight `exp(similarity / temperature)`. Test rows are processed `chunk_size` at a
    time, so a 10k x 60k similarity matrix never has to fit in memory.

    Args:
        encoder: a `keras.Model` mapping [0, 1] image batches to features `(batch, dim)`,
            or `None` when the data already hold `(features, labels)` NumPy arrays
            (from `extract_features`).
        train_data: `(images, labels)` NumPy arrays or a `tf.data.Dataset` of batches;
            the neighbours are taken from it.
        test_data: the same, for the reported accuracy.
        k: number of neighbours (at most the number of training examples).
        temperature: softness of the vote (> 0); small values approach a plain
            nearest-neighbour vote.
        preprocess: optional callable applied to the [0, 1] images before the encoder.
        batch_size: batch size of feature extraction for NumPy input.
        chunk_size: number of test rows scored at once.
        dataset_name: name stored in the result.

    Returns:
        An `EvaluationResult` with protocol `"knn (k=..., T=...)"`.

    Example:

    >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> images = np.random.rand(100, 8, 8, 1).astype("float32")
    >>> labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    >>> result = knn_eval(encoder, (images, labels), (images, labels), k=10)
    """
    start = time.perf_counter()
    _check_encoder_or_features(encoder)
    train_data = _check_data(train_data, "train_data")
    test_data = _check_data(test_data, "test_data")
    _check_positive_int(k, "k")
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature}")
    _check_positive_int(batch_size, "batch_size")
    _check_positive_int(chunk_size, "chunk_size")

    train_h, train_y = _features(encoder, train_data, preprocess, batch_size)
    if k > train_y.size:
        raise ValueError(
            f"`k` must be at most the number of training examples ({train_y.size}). "
            f"Received: k={k}"
        )
    test_h, test_y = _features(encoder, test_data, preprocess, batch_size)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    scores = _knn_scores(train_h, train_y, test_h, num_classes, k, temperature, chunk_size)
    return EvaluationResult(
        dataset=dataset_name,
        protocol=f"knn (k={k}, T={temperature:g})",
        accuracy=_top_k_accuracy(scores, test_y, 1),
        top5_accuracy=_top_k_accuracy(scores, test_y, 5),
        num_train=int(train_y.size),
        num_test=int(test_y.size),
        epochs=None,
        seconds=time.perf_counter() - start,
        details={"k": k, "temperature": temperature, "feature_dim": int(train_h.shape[1])},
    )


def _l2_normalise(features):
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _knn_scores(train_h, train_labels, test_h, num_classes, k, temperature, chunk_size):
    """Class scores `sum over the k neighbours of exp(sim / T)`, up to a row factor."""
    candidates = ops.convert_to_tensor(np.ascontiguousarray(_l2_normalise(train_h).T))
    test_h = _l2_normalise(test_h)
    scores = np.empty((test_h.shape[0], num_classes), np.float64)
    for start in range(0, test_h.shape[0], chunk_size):
        queries = ops.convert_to_tensor(test_h[start : start + chunk_size])
        similarity, neighbours = ops.top_k(ops.matmul(queries, candidates), k)
        similarity = ops.convert_to_numpy(similarity).astype(np.float64)
        neighbours = ops.convert_to_numpy(neighbours)
        # exp((sim - 1) / T) instead of exp(sim / T): the same vote up to a per-row
        # factor, without overflow for small temperatures (exp(1 / 0.01) overflows).
        weights = np.exp((similarity - 1.0) / temperature)
        rows = np.arange(neighbours.shape[0])[:, None]
        flat = (rows * num_classes + train_labels[neighbours]).ravel()
        votes = np.bincount(flat, weights.ravel(), minlength=neighbours.shape[0] * num_classes)
        scores[start : start + neighbours.shape[0]] = votes.reshape(-1, num_classes)
    return scores


# --------------------------------------------------------------------------- fine-tuning


def balanced_subset(labels, fraction, seed=0):
    """Indices of a class-balanced labelled subset, chosen deterministically by seed.

    The semi-supervised protocol (paper Section 6, following Zhai et al., 2019) fine-
    tunes on 1% or 10% of the training labels. The subset holds
    `round(fraction * len(labels))` examples, split as evenly as possible across the
    classes (class sizes differ by at most one; which classes get the remainder is
    drawn by `seed`). A class smaller than its share contributes all its examples
    (and the subset is that much smaller).
    With one seed the subsets are nested: the 1% subset is inside the 10% one.

    Args:
        labels: integer class ids, shape `(n,)`.
        fraction: the labelled fraction, in (0, 1]; 1.0 keeps every example.
        seed: integer seed of the choice.

    Returns:
        Sorted int64 indices into `labels`.

    Example:

    >>> labels = np.repeat(np.arange(10), 100)
    >>> indices = balanced_subset(labels, 0.1, seed=0)
    >>> np.bincount(labels[indices]).tolist()
    [10, 10, 10, 10, 10, 10, 10, 10, 10, 10]
    """
    labels = _check_labels(labels, "labels")
    _check_fraction(fraction, "fraction")
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}")
    if fraction == 1.0:
        return np.arange(labels.size, dtype=np.int64)
    classes = np.unique(labels)
    total = int(math.floor(fraction * labels.size + 0.5))
    if total < classes.size:
        raise ValueError(
            f"`fraction` keeps {total} of {labels.size} examples, fewer than the "
            f"{classes.size} classes. Use a fraction of at least "
            f"{classes.size / labels.size:.4g}. Received: fraction={fraction}"
        )
    rng = np.random.default_rng(seed)
    # Every draw below is independent of `fraction`, which makes the subsets nested.
    rank = np.empty(classes.size, np.int64)
    rank[rng.permutation(classes.size)] = np.arange(classes.size)
    quota = total // classes.size + (rank < total % classes.size)
    chosen = []
    for label, count in zip(classes, quota):
        members = np.flatnonzero(labels == label)
        chosen.append(members[rng.permutation(members.size)][:count])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def fine_tune(
    encoder,
    train_data,
    test_data,
    label_fraction=0.1,
    *,
    head=None,
    head_layers=1,
    augment=None,
    preprocess=None,
    epochs=30,
    batch_size=256,
    learning_rate=None,
    optimizer=None,
    seed=0,
    verbose=0,
    dataset_name="unnamed",
):
    """Semi-supervised fine-tuning on a class-balanced labelled subset.

    The paper's semi-supervised protocol (Section 6): the whole pretrained encoder plus
    a new linear head is trained with labels on 1% or 10% of the training set
    (`balanced_subset`), with Nesterov momentum, learning rate 0.05 x batch/256, no
    weight decay, random crop and flip as the only augmentation; SimCLRv2 (Section 3)
    fine-tunes from the first layer of the projection head, which `head` and
    `head_layers` reproduce. SimCLRv2 trains 60 epochs on 1% and 30 on 10% of
    ImageNet. The caller's encoder and head are not modified: the network is built
    from copies (`keras.models.clone_model` + `set_weights`).

    Args:
        encoder: a `keras.Model` mapping [0, 1] image batches to features
            `(batch, dim)` that `keras.models.clone_model` can copy (functional,
            `Sequential`, or a subclass with a complete `get_config`).
        train_data: `(images, labels)` NumPy arrays or a `tf.data.Dataset` of batches.
            With a dataset and `label_fraction < 1` the chosen subset is read into
            memory, so the dataset must yield the same examples in the same order on
            each pass (no reshuffling).
        test_data: the same, for the reported accuracy.
        label_fraction: fraction of the training labels used, in (0, 1].
        head: optional projection head to keep part of: a `keras.Model` whose layers
            form a chain (as `keras_simclr.models.projection_head` builds), or a single
            layer (used whole).
        head_layers: with a `keras.Model` head, how many of its layers to keep (1 in
            SimCLRv2), a layer being a dense layer and the normalisation and activation
            layers after it, as in `keras_simclr.models.projection_head_layers`;
            `None` keeps the whole head, 0 none of it.
        augment: optional callable applied to the [0, 1] training batches (e.g. random
            crop and flip); it replaces `preprocess` for training and must output the
            evaluation image size.
        preprocess: optional callable applied to the [0, 1] test batches (and to the
            training batches when `augment` is `None`), e.g. a centre crop.
        epochs: training epochs over the labelled subset.
        batch_size: training batch size (and feature-extraction batch size).
        learning_rate: defaults to `0.05 * batch_size / 256`, decayed with a cosine.
        optimizer: a `keras.optimizers.Optimizer` to use instead of the default SGD
            (then `learning_rate` must be `None`).
        seed: seed of the subset, the shuffling and the new head's initialisation.
        verbose: verbosity of `Model.fit`.
        dataset_name: name stored in the result.

    Returns:
        An `EvaluationResult` with protocol `"fine-tune (<fraction> labels)"`; its
        `model` is the fine-tuned classifier.

    Example:

    >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> images = np.random.rand(200, 8, 8, 1).astype("float32")
    >>> labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    >>> result = fine_tune(encoder, (images, labels), (images, labels), 0.1, epochs=2)
    """
    return _train_classifier(
        protocol=f"fine-tune ({_percent(label_fraction)} labels)",
        encoder=encoder,
        head=head,
        head_layers=head_layers,
        train_data=train_data,
        test_data=test_data,
        label_fraction=label_fraction,
        augment=augment,
        preprocess=preprocess,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        base_learning_rate=0.05,
        optimizer=optimizer,
        seed=seed,
        verbose=verbose,
        dataset_name=dataset_name,
    )


def supervised_baseline(
    encoder,
    train_data,
    test_data,
    label_fraction=1.0,
    *,
    augment=None,
    preprocess=None,
    epochs=90,
    batch_size=256,
    learning_rate=None,
    optimizer=None,
    seed=0,
    verbose=0,
    dataset_name="unnamed",
):
    """The same architecture trained from scratch with labels, for comparison.

    The paper sets its self-supervised numbers against a supervised network of the
    same architecture (Figure 1; Table 7's supervised baseline on 1% / 10% labels).
    Pass a freshly initialised encoder: a linear head is added and the whole network
    is trained with cross-entropy on `label_fraction` of the labels (a
    `balanced_subset`), SGD with Nesterov momentum 0.9 and learning rate
    0.1 x batch/256 (the usual supervised ResNet rate) with cosine decay. The
    caller's encoder is copied, not modified.

    Args:
        encoder: a `keras.Model` mapping [0, 1] image batches to features
            `(batch, dim)` that `keras.models.clone_model` can copy (functional,
            `Sequential`, or a subclass with a complete `get_config`), freshly initialised.
        train_data: `(images, labels)` NumPy arrays or a `tf.data.Dataset` of batches.
        test_data: the same, for the reported accuracy.
        label_fraction: fraction of the training labels used, in (0, 1].
        augment: optional callable applied to the [0, 1] training batches.
        preprocess: optional callable applied to the [0, 1] test batches (and to the
            training batches when `augment` is `None`).
        epochs: training epochs.
        batch_size: training batch size.
        learning_rate: defaults to `0.1 * batch_size / 256`, decayed with a cosine.
        optimizer: a `keras.optimizers.Optimizer` to use instead of the default SGD.
        seed: seed of the subset, the shuffling and the head's initialisation.
        verbose: verbosity of `Model.fit`.
        dataset_name: name stored in the result.

    Returns:
        An `EvaluationResult` with protocol `"supervised (<fraction> labels)"`; its
        `model` is the trained classifier.

    Example:

    >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> images = np.random.rand(200, 8, 8, 1).astype("float32")
    >>> labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    >>> result = supervised_baseline(encoder, (images, labels), (images, labels), epochs=2)
    """
    return _train_classifier(
        protocol=f"supervised ({_percent(label_fraction)} labels)",
        encoder=encoder,
        head=None,
        head_layers=None,
        train_data=train_data,
        test_data=test_data,
        label_fraction=label_fraction,
        augment=augment,
        preprocess=preprocess,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        base_learning_rate=0.1,
        optimizer=optimizer,
        seed=seed,
        verbose=verbose,
        dataset_name=dataset_name,
    )


def _train_classifier(
    protocol,
    encoder,
    head,
    head_layers,
    train_data,
    test_data,
    label_fraction,
    augment,
    preprocess,
    epochs,
    batch_size,
    learning_rate,
    base_learning_rate,
    optimizer,
    seed,
    verbose,
    dataset_name,
):
    """The training loop `fine_tune` and `supervised_baseline` share."""
    start = time.perf_counter()
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            "`encoder` must be a `keras.Model` (it is copied with "
            f"`keras.models.clone_model`). Received: encoder of type "
            f"{type(encoder).__name__}"
        )
    train_data = _check_data(train_data, "train_data")
    test_data = _check_data(test_data, "test_data")
    _check_fraction(label_fraction, "label_fraction")
    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    if optimizer is not None and learning_rate is not None:
        raise ValueError(
            "Pass either `optimizer` or `learning_rate`, not both. Received: "
            f"optimizer={optimizer!r}, learning_rate={learning_rate}"
        )
    if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            "`optimizer` must be a `keras.optimizers.Optimizer` instance. Received: "
            f"optimizer of type {type(optimizer).__name__}"
        )
    head_sources = _head_layers(head, head_layers)

    all_labels = _labels_of(train_data)
    num_classes = int(all_labels.max()) + 1
    if np.unique(all_labels).size < 2:
        raise ValueError("`train_data` must hold at least 2 classes for a classifier.")
    indices = balanced_subset(all_labels, label_fraction, seed)
    steps_per_epoch = math.ceil(indices.size / batch_size)
    dataset = _training_dataset(
        train_data, all_labels, indices, label_fraction, augment, preprocess, batch_size, seed
    )

    encoder_copy = keras.models.clone_model(encoder)
    encoder_copy.trainable = True
    head_copies = [layer.__class__.from_config(layer.get_config()) for layer in head_sources]
    classifier = keras.Sequential(
        [
            encoder_copy,
            *head_copies,
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
                # Logits in float32 under a mixed-precision policy.
                dtype="float32",
                name="classifier",
            ),
        ]
    )
    sample_images, _ = next(iter(dataset))
    classifier(sample_images, training=False)
    if not encoder.built:
        encoder(sample_images, training=False)
    encoder_copy.set_weights(encoder.get_weights())
    for source, copy in zip(head_sources, head_copies):
        if source.weights:
            copy.set_weights(source.get_weights())
        copy.trainable = True

    if optimizer is None:
        learning_rate = _default_learning_rate(learning_rate, base_learning_rate, batch_size)
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=epochs * steps_per_epoch
        )
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    classifier.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # The datasets are shuffled (seeded) by `_training_dataset`.
    history = classifier.fit(dataset, epochs=epochs, verbose=verbose, shuffle=False)

    logits, test_y = _extract(classifier, test_data, preprocess, batch_size)
    return EvaluationResult(
        dataset=dataset_name,
        protocol=protocol,
        accuracy=_top_k_accuracy(logits, test_y, 1),
        top5_accuracy=_top_k_accuracy(logits, test_y, 5),
        num_train=int(indices.size),
        num_test=int(test_y.size),
        epochs=epochs,
        seconds=time.perf_counter() - start,
        details={
            "label_fraction": label_fraction,
            "head_layers": sum(_is_dense(layer) for layer in head_copies),
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "history": history.history,
        },
        model=classifier,
    )


def _head_layers(head, head_layers):
    """The head layers to copy: the first `head_layers` dense blocks of `head`."""
    if head is None:
        return []
    if not isinstance(head, keras.layers.Layer):
        raise ValueError(
            "`head` must be a `keras.Model` or a `keras.layers.Layer`. Received: "
            f"head of type {type(head).__name__}"
        )
    if not isinstance(head, keras.Model):
        return [head]
    layers = [layer for layer in head.layers if not isinstance(layer, keras.layers.InputLayer)]
    if head_layers is None:
        return layers
    dense = [i for i, layer in enumerate(layers) if _is_dense(layer)]
    if (
        isinstance(head_layers, bool)
        or not isinstance(head_layers, (int, np.integer))
        or not 0 <= head_layers <= len(dense)
    ):
        raise ValueError(
            f"`head_layers` must be an integer in [0, {len(dense)}] (the number of dense "
            f"layers of `head`) or None for the whole head. "
            f"Received: head_layers={head_layers!r}"
        )
    # Layer k ends where dense layer k + 1 starts, as `projection_head_layers` cuts.
    end = dense[head_layers] if head_layers < len(dense) else len(layers)
    return layers[:end]


def _is_dense(layer):
    return isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))


def _training_dataset(
    data, all_labels, indices, fraction, augment, preprocess, batch_size, seed
):
    steps_per_epoch = math.ceil(indices.size / batch_size)
    transform = augment if augment is not None else preprocess

    def prepare(images, labels):
        images = _unit_float(images)
        if transform is not None:
            images = transform(images)
        return images, labels

    if isinstance(data, tf.data.Dataset) and fraction == 1.0:
        # Streamed: the full training set need not fit in memory. The count of the
        # labels pass tells `fit` the epoch length, which `unbatch` hides.
        dataset = (
            data.unbatch()
            .shuffle(16 * batch_size, seed=seed)
            .batch(batch_size)
            .apply(tf.data.experimental.assert_cardinality(steps_per_epoch))
        )
    else:
        images, labels = _gather(data, all_labels, indices)
        dataset = (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(labels.size, seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
        )
    return dataset.map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).prefetch(tf.data.AUTOTUNE)


def _gather(data, all_labels, indices):
    """`(images[indices], labels[indices])` as NumPy arrays, for arrays or a dataset."""
    if not isinstance(data, tf.data.Dataset):
        images, labels = data
        return np.asarray(images)[indices], labels[indices]
    keep = np.zeros(all_labels.size, bool)
    keep[indices] = True
    images, offset = [], 0
    for batch_images, batch_labels in _batches(data, None):
        stop = offset + batch_labels.size
        if stop > all_labels.size or not np.array_equal(batch_labels, all_labels[offset:stop]):
            raise ValueError(
                "`train_data` yielded different examples on a second pass; the labelled "
                "subset cannot be selected. Pass a dataset without reshuffling (or "
                "`(images, labels)` arrays)."
            )
        images.append(np.asarray(batch_images)[keep[offset:stop]])
        offset = stop
    return np.concatenate(images), all_labels[indices]


# --------------------------------------------------------------------------- pictures


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
            marker = "." if values.size <= 50 else None
            axis.plot(epochs[: values.size], values, marker=marker, label=label)
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
    _check_positive_int(max_points, "max_points")
    figure_class = _figure_class()
    tsne_class = _tsne_class(method)
    if isinstance(encoder_or_features, keras.layers.Layer):
        data = _check_data(data, "data")
        _check_positive_int(batch_size, "batch_size")
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
    _write_bytes(path, buffer.getvalue())


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


# --------------------------------------------------------------------------- shared


def _check_results(results):
    if isinstance(results, EvaluationResult):
        return [results]
    results = list(results)
    for result in results:
        if not isinstance(result, EvaluationResult):
            raise ValueError(
                "`results` must be `EvaluationResult`s. Received an element of type "
                f"{type(result).__name__}"
            )
    return results


def _check_encoder_or_features(encoder):
    if encoder is not None:
        _check_encoder(encoder)


def _features(encoder, data, preprocess, batch_size):
    """Features of checked data: extracted by `encoder`, or the data themselves."""
    if encoder is not None:
        return _extract(encoder, data, preprocess, batch_size)
    if isinstance(data, tf.data.Dataset) or np.asarray(data[0]).ndim != 2:
        raise ValueError(
            "With `encoder=None` the data must be `(features, labels)` NumPy arrays "
            "with 2-D features, e.g. from `extract_features`. Received "
            + (
                "a tf.data.Dataset."
                if isinstance(data, tf.data.Dataset)
                else f"features of shape {np.asarray(data[0]).shape}."
            )
        )
    return np.asarray(data[0], np.float32), data[1]


def _check_encoder(encoder):
    if not isinstance(encoder, keras.layers.Layer):
        raise ValueError(
            "`encoder` must be a `keras.Model` (or layer) mapping image batches to "
            f"features. Received: encoder of type {type(encoder).__name__}"
        )


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def _check_fraction(value, name):
    if not 0.0 < value <= 1.0:
        raise ValueError(f"`{name}` must be in (0, 1]. Received: {name}={value}")


def _check_labels(labels, name):
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"The labels of `{name}` must be integer class ids of shape (n,). Received: "
            f"shape {labels.shape}, dtype {labels.dtype}. For one-hot labels pass "
            "`labels.argmax(axis=-1)`."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"The labels of `{name}` must be class ids >= 0. Received: min {labels.min()}"
        )
    return labels.astype(np.int64)


def _check_data(data, name):
    """Returns a dataset unchanged, or `(images, labels)` with checked labels."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                f"`{name}` must yield `(images, labels)` batches. Received a dataset "
                f"with element_spec={spec}"
            )
        images_spec, labels_spec = spec
        if labels_spec.shape.rank == 0:
            raise ValueError(
                f"`{name}` must be batched (labels of rank >= 1); call `.batch(...)` on "
                f"it. Received: element_spec={spec}"
            )
        if not labels_spec.dtype.is_integer:
            raise ValueError(
                f"The labels of `{name}` must be integer class ids. Received: "
                f"dtype {labels_spec.dtype.name}. For one-hot labels map "
                "`tf.argmax(labels, axis=-1)`."
            )
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images = np.asarray(data[0])
        labels = _check_labels(data[1], name)
        if images.ndim < 2 or images.shape[0] != labels.size or labels.size == 0:
            raise ValueError(
                f"`{name}` must hold as many images as labels (and at least one). "
                f"Received: images of shape {images.shape}, {labels.size} labels"
            )
        return images, labels
    raise ValueError(
        f"`{name}` must be a tuple `(images, labels)` of NumPy arrays or a "
        f"`tf.data.Dataset` of `(images, labels)` batches. Received: {name} of type "
        f"{type(data).__name__}"
    )


def _batches(data, batch_size):
    """Yields `(images, int64 labels)` batches of checked data, in order."""
    if isinstance(data, tf.data.Dataset):
        for images, labels in data:
            yield images, labels.numpy().reshape(-1).astype(np.int64)
        return
    images, labels = data
    if batch_size is None:
        batch_size = labels.size
    for start in range(0, labels.size, batch_size):
        yield images[start : start + batch_size], labels[start : start + batch_size]


def _labels_of(data):
    if isinstance(data, tf.data.Dataset):
        labels = [labels for _, labels in _batches(data, None)]
        if not labels:
            raise ValueError("`train_data` is empty.")
        return _check_labels(np.concatenate(labels), "train_data")
    return data[1]


def _unit_float(images):
    """uint8 images to [0, 1] floats; float images are taken to be in [0, 1]."""
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        return ops.cast(images, "float32") / 255.0
    return ops.cast(images, "float32")


def _extract(function, data, preprocess, batch_size):
    """`function(preprocess(images), training=False)` over checked data, batched."""
    step, outputs, labels = None, [], []
    for images, batch_labels in _batches(data, batch_size):
        if step is None:
            # One graph per extraction, traced once for every batch size. A partial
            # (not a closure) keys TensorFlow's retracing detector on this extraction
            # alone, so consecutive evaluations are not reported as retracing.
            signature = tf.TensorSpec((None, *images.shape[1:]), images.dtype)
            step = tf.function(
                functools.partial(_inference, function, preprocess),
                input_signature=[signature],
            )
        output = step(images).numpy()
        if output.ndim != 2:
            raise ValueError(
                "`encoder` must map an image batch to 2-D features (batch, dim). It "
                f"returned shape {output.shape}; for a `keras.applications` model pass "
                "`include_top=False, pooling='avg'`."
            )
        outputs.append(output)
        labels.append(batch_labels)
    if not outputs:
        raise ValueError("The data is empty: no batch to extract features from.")
    labels = _check_labels(np.concatenate(labels), "data")
    return np.concatenate(outputs), labels


def _inference(function, preprocess, images):
    images = _unit_float(images)
    if preprocess is not None:
        images = preprocess(images)
    return ops.cast(function(images, training=False), "float32")


def _top_k_accuracy(scores, labels, k):
    if k == 1:
        return float(np.mean(np.argmax(scores, axis=1) == labels))
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def _default_learning_rate(learning_rate, base, batch_size):
    if learning_rate is None:
        # Linear scaling with the batch size, as everywhere in the paper.
        return base * batch_size / 256
    if not learning_rate > 0:
        raise ValueError(
            f"`learning_rate` must be > 0. Received: learning_rate={learning_rate}"
        )
    return float(learning_rate)


def _percent(fraction):
    return f"{100 * fraction:g}%"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_bytes(path, content):
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temporary = f"{path}.tmp"
    with tf.io.gfile.GFile(temporary, "wb") as f:
        f.write(content)
    tf.io.gfile.rename(temporary, path, overwrite=True)
