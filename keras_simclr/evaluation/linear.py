"""Linear evaluation: a linear classifier on frozen features (paper Appendix B.6),
solved with L-BFGS or with the paper's SGD."""

import math
import time

import keras
import numpy as np
import tensorflow as tf
from scipy import optimize
from threadpoolctl import threadpool_limits

from keras_simclr.evaluation.features import _check_data
from keras_simclr.evaluation.features import _check_encoder_or_features
from keras_simclr.evaluation.features import _features
from keras_simclr.evaluation.results import EvaluationResult
from keras_simclr.evaluation.results import _top_k_accuracy
from keras_simclr import checks

_DEFAULT_L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


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
    checks.positive_int("batch_size", batch_size)
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
        checks.positive_int("max_iterations", max_iterations)
    else:
        checks.positive_int("epochs", epochs)
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


def _default_learning_rate(learning_rate, base, batch_size):
    if learning_rate is None:
        # Linear scaling with the batch size, as everywhere in the paper.
        return base * batch_size / 256
    if not learning_rate > 0:
        raise ValueError(
            f"`learning_rate` must be > 0. Received: learning_rate={learning_rate}"
        )
    return float(learning_rate)
