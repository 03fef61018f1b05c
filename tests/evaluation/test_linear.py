"""keras_simclr.evaluation.linear: the solvers against finite differences and
scikit-learn; one L2 strength needs no validation split."""

import keras
import numpy as np
import pytest
from scipy import optimize

from keras_simclr import evaluation
from keras_simclr.evaluation import linear

from clusters import flatten_encoder
from clusters import gaussian_clusters


def test_logistic_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    labels = rng.integers(0, 3, 40)
    params = rng.normal(size=(5 + 1) * 3)

    def loss(p):
        return linear._logistic_objective(p, features, labels, 3, 0.3)[0]

    def grad(p):
        return linear._logistic_objective(p, features, labels, 3, 0.3)[1]

    assert optimize.check_grad(loss, grad, params) < 1e-5
    # The loss itself, from the definition.
    weights, bias = params[:15].reshape(5, 3), params[15:]
    logits = features @ weights + bias
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_p[np.arange(40), labels].mean() + 0.15 * np.sum(weights**2)
    np.testing.assert_allclose(loss(params), expected, rtol=1e-6)


def test_lbfgs_matches_scikit_learn_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model")
    features, labels, _ = gaussian_clusters(300, 4, 6, separation=2.0, seed=0)
    l2 = 1e-2
    params, solution = linear._fit_logistic(features, labels, 4, l2, 1000)
    assert solution.success
    # scikit-learn minimises 0.5 |W|^2 + C * sum of cross-entropies: C = 1 / (l2 n).
    reference = linear_model.LogisticRegression(
        C=1 / (l2 * labels.size), tol=1e-10, max_iter=5000
    )
    reference.fit(features, labels)
    probabilities = keras.ops.convert_to_numpy(
        keras.ops.softmax(linear._logistic_logits(params, features, 4))
    )
    np.testing.assert_allclose(probabilities, reference.predict_proba(features), atol=2e-4)


def test_a_single_l2_strength_needs_no_validation():
    train = gaussian_clusters(300, 3, 4, separation=3.0, seed=0)[:2]
    encoder = flatten_encoder((4,))
    single = evaluation.linear_eval(encoder, train, train, l2_grid=(1e-3,))
    assert single.details["l2"] == 1e-3 and "validation_accuracy" not in single.details
    # The same fit as the library's solver on the standardised features.
    mean, std = linear._standardisation(train[0])
    params, _ = linear._fit_logistic((train[0] - mean) / std, train[1], 3, 1e-3, 1000)
    logits = linear._logistic_logits(params, (train[0] - mean) / std, 3)
    assert single.accuracy == np.mean(logits.argmax(axis=1) == train[1])
