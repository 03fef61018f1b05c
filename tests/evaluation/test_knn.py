"""keras_simclr.evaluation.knn: the weighted vote against a NumPy reference."""

import numpy as np
import pytest

from keras_simclr.evaluation import knn

from clusters import gaussian_clusters


def _knn_reference(train_h, train_labels, test_h, num_classes, k, temperature):
    """Weighted kNN written from its definition, one test example at a time."""
    train_h = train_h / np.linalg.norm(train_h, axis=1, keepdims=True)
    scores = np.zeros((len(test_h), num_classes))
    for row, query in enumerate(test_h):
        similarity = train_h @ (query / np.linalg.norm(query))
        for neighbour in np.argsort(-similarity, kind="stable")[:k]:
            scores[row, train_labels[neighbour]] += np.exp(similarity[neighbour] / temperature)
    return scores


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
@pytest.mark.parametrize("k, temperature", [(1, 0.1), (5, 0.05), (50, 0.5)])
def test_knn_scores_match_reference(k, temperature, chunk_size):
    rng = np.random.default_rng(k)
    train_h = rng.normal(size=(120, 6)).astype("float32")
    train_labels = rng.integers(0, 5, 120)
    test_h = rng.normal(size=(30, 6)).astype("float32")
    scores = knn._knn_scores(
        train_h, train_labels, test_h, 5, k, temperature, chunk_size
    )
    expected = _knn_reference(train_h, train_labels, test_h, 5, k, temperature)
    # Equal up to the per-row factor exp(-1 / T) the implementation divides out.
    np.testing.assert_allclose(scores * np.exp(1 / temperature), expected, rtol=1e-4)


def test_knn_small_temperature_does_not_overflow():
    features, labels, _ = gaussian_clusters(200, 3, 4, separation=8.0, seed=0)
    scores = knn._knn_scores(features, labels, features, 3, 20, 0.002, 64)
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores.argmax(axis=1), labels)
