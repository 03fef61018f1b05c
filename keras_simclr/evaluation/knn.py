"""Weighted k-nearest-neighbour classification on l2-normalised features h."""

import time

import numpy as np
from keras import ops

from keras_simclr.evaluation.features import _check_data
from keras_simclr.evaluation.features import _check_encoder_or_features
from keras_simclr.evaluation.features import _features
from keras_simclr.evaluation.results import EvaluationResult
from keras_simclr.evaluation.results import _top_k_accuracy
from keras_simclr import checks


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
    checks.positive_int("k", k)
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature}")
    checks.positive_int("batch_size", batch_size)
    checks.positive_int("chunk_size", chunk_size)

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
