"""Evaluation protocols on data whose answer is known; subsets, records, pictures.

Linear evaluation and kNN are checked on Gaussian clusters: well separated (every
protocol must be exact) and overlapping (accuracy must land in a band around the
Bayes-optimal rule's accuracy on the same test set). The solvers are checked against
NumPy / scikit-learn references, fine-tuning on copies of the caller's models, and the
"random encoder is worse than a trained one" claim on real Fashion-MNIST images.
"""

import doctest
import functools
import json
import logging
import math
import struct
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import threadpoolctl
from scipy import optimize

from keras_simclr import evaluation

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _clusters(n, num_classes, dim, separation, seed):
    """Gaussian classes with identity covariance around fixed random means."""
    means = np.random.default_rng(1234 + num_classes * dim).normal(size=(num_classes, dim))
    means *= separation / np.sqrt(2 * dim)  # mean pairwise distance ~ separation
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    features = means[labels] + rng.normal(size=(n, dim))
    return features.astype("float32"), labels.astype("int64"), means


def _flatten_encoder(shape):
    """The identity representation: the encoder only flattens."""
    return keras.Sequential([keras.Input(shape), keras.layers.Flatten()])


def _as_dataset(data, batch_size=64):
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def _png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == PNG_SIGNATURE
    return struct.unpack(">II", header[16:24])


# --------------------------------------------------------------------------- subsets


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.37, 1.0])
def test_balanced_subset_is_class_balanced(fraction):
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 300))
    indices = evaluation.balanced_subset(labels, fraction, seed=3)
    counts = np.bincount(labels[indices], minlength=10)
    assert indices.size == math.floor(fraction * labels.size + 0.5)
    assert counts.max() - counts.min() <= 1
    assert np.all(np.diff(indices) > 0)  # sorted, no repeats


def test_balanced_subset_is_reproducible_seeded_and_nested():
    labels = np.random.default_rng(1).integers(0, 7, 5000)
    one = evaluation.balanced_subset(labels, 0.01, seed=5)
    np.testing.assert_array_equal(one, evaluation.balanced_subset(labels, 0.01, seed=5))
    assert not np.array_equal(one, evaluation.balanced_subset(labels, 0.01, seed=6))
    ten = evaluation.balanced_subset(labels, 0.1, seed=5)
    assert np.isin(one, ten).all()


def test_balanced_subset_takes_all_of_a_small_class():
    labels = np.concatenate([np.zeros(1000), np.ones(1000), np.full(3, 2)]).astype(int)
    indices = evaluation.balanced_subset(labels, 0.03, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[indices]), [20, 20, 3])


@pytest.mark.parametrize(
    "labels, fraction, seed, match",
    [
        (np.arange(100) % 10, 0.0, 0, r"`fraction` must be in \(0, 1\]"),
        (np.arange(100) % 10, 1.5, 0, r"`fraction` must be in \(0, 1\]"),
        (np.arange(100) % 10, 0.05, 0, "fewer than the 10 classes"),
        (np.arange(100) % 10, 0.5, 0.5, "`seed` must be an integer"),
        (np.eye(3)[np.arange(30) % 3], 0.5, 0, "labels.argmax"),
        (np.arange(10) - 1, 0.5, 0, "class ids >= 0"),
    ],
)
def test_balanced_subset_validates(labels, fraction, seed, match):
    with pytest.raises(ValueError, match=match):
        evaluation.balanced_subset(labels, fraction, seed)


# --------------------------------------------------------------------------- solvers


def test_logistic_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    labels = rng.integers(0, 3, 40)
    params = rng.normal(size=(5 + 1) * 3)

    def loss(p):
        return evaluation._logistic_objective(p, features, labels, 3, 0.3)[0]

    def grad(p):
        return evaluation._logistic_objective(p, features, labels, 3, 0.3)[1]

    assert optimize.check_grad(loss, grad, params) < 1e-5
    # The loss itself, from the definition.
    weights, bias = params[:15].reshape(5, 3), params[15:]
    logits = features @ weights + bias
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_p[np.arange(40), labels].mean() + 0.15 * np.sum(weights**2)
    np.testing.assert_allclose(loss(params), expected, rtol=1e-6)


def test_lbfgs_matches_scikit_learn_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model")
    features, labels, _ = _clusters(300, 4, 6, separation=2.0, seed=0)
    l2 = 1e-2
    params, solution = evaluation._fit_logistic(features, labels, 4, l2, 1000)
    assert solution.success
    # scikit-learn minimises 0.5 |W|^2 + C * sum of cross-entropies: C = 1 / (l2 n).
    reference = linear_model.LogisticRegression(
        C=1 / (l2 * labels.size), tol=1e-10, max_iter=5000
    )
    reference.fit(features, labels)
    probabilities = keras.ops.convert_to_numpy(
        keras.ops.softmax(evaluation._logistic_logits(params, features, 4))
    )
    np.testing.assert_allclose(probabilities, reference.predict_proba(features), atol=2e-4)


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
    scores = evaluation._knn_scores(
        train_h, train_labels, test_h, 5, k, temperature, chunk_size
    )
    expected = _knn_reference(train_h, train_labels, test_h, 5, k, temperature)
    # Equal up to the per-row factor exp(-1 / T) the implementation divides out.
    np.testing.assert_allclose(scores * np.exp(1 / temperature), expected, rtol=1e-4)


def test_knn_small_temperature_does_not_overflow():
    features, labels, _ = _clusters(200, 3, 4, separation=8.0, seed=0)
    scores = evaluation._knn_scores(features, labels, features, 3, 20, 0.002, 64)
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores.argmax(axis=1), labels)


# --------------------------------------------------------------------------- protocols

PROTOCOLS = {
    "lbfgs": lambda encoder, train, test: evaluation.linear_eval(encoder, train, test),
    "sgd": lambda encoder, train, test: evaluation.linear_eval(
        encoder, train, test, solver="sgd", epochs=30, batch_size=64
    ),
    "knn": lambda encoder, train, test: evaluation.knn_eval(encoder, train, test, k=20),
}


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_separable_clusters_are_classified_exactly(protocol):
    train = _clusters(600, 5, 8, separation=12.0, seed=0)[:2]
    test = _clusters(300, 5, 8, separation=12.0, seed=1)[:2]
    encoder = _flatten_encoder((8,))
    result = PROTOCOLS[protocol](encoder, train, test)
    assert result.accuracy == 1.0 and result.top5_accuracy == 1.0
    assert (result.num_train, result.num_test) == (600, 300)
    # The same data as a dataset of batches gives the same answer.
    from_dataset = PROTOCOLS[protocol](encoder, _as_dataset(train), _as_dataset(test))
    assert from_dataset.accuracy == result.accuracy
    assert from_dataset.details.keys() == result.details.keys()


@pytest.mark.parametrize(
    "protocol, below, above",
    [("lbfgs", 0.03, 0.015), ("sgd", 0.03, 0.015), ("knn", 0.07, 0.015)],
)
def test_overlapping_clusters_reach_the_bayes_accuracy(protocol, below, above):
    train = _clusters(3000, 4, 6, separation=2.5, seed=0)[:2]
    test_h, test_y, means = _clusters(2000, 4, 6, separation=2.5, seed=1)
    # Equal priors and identity covariances: the Bayes rule is the nearest mean.
    distances = ((test_h[:, None, :] - means[None]) ** 2).sum(axis=-1)
    bayes = np.mean(distances.argmin(axis=1) == test_y)
    assert 0.6 < bayes < 0.9  # a genuinely hard problem
    result = PROTOCOLS[protocol](_flatten_encoder((6,)), train, (test_h, test_y))
    assert bayes - below <= result.accuracy <= bayes + above
    assert result.top5_accuracy == 1.0  # 4 classes: top-5 holds them all
    if protocol == "lbfgs":
        assert result.details["l2"] in evaluation._DEFAULT_L2_GRID
        assert len(result.details["validation_accuracy"]) == len(evaluation._DEFAULT_L2_GRID)


def test_a_single_l2_strength_needs_no_validation():
    train = _clusters(300, 3, 4, separation=3.0, seed=0)[:2]
    encoder = _flatten_encoder((4,))
    single = evaluation.linear_eval(encoder, train, train, l2_grid=(1e-3,))
    assert single.details["l2"] == 1e-3 and "validation_accuracy" not in single.details
    # The same fit as the library's solver on the standardised features.
    mean, std = evaluation._standardisation(train[0])
    params, _ = evaluation._fit_logistic((train[0] - mean) / std, train[1], 3, 1e-3, 1000)
    logits = evaluation._logistic_logits(params, (train[0] - mean) / std, 3)
    assert single.accuracy == np.mean(logits.argmax(axis=1) == train[1])


def test_top5_accuracy_against_numpy():
    scores = np.random.default_rng(0).normal(size=(500, 20))
    labels = np.random.default_rng(1).integers(0, 20, 500)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    expected = np.mean([label in row for label, row in zip(labels, top5)])
    assert evaluation._top_k_accuracy(scores, labels, 5) == pytest.approx(expected)
    assert evaluation._top_k_accuracy(scores, labels, 1) == np.mean(scores.argmax(1) == labels)


def test_features_are_extracted_in_inference_mode_with_preprocessing():
    encoder = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    # Moving statistics far from the batch's, so training mode would differ.
    encoder.layers[1].moving_mean.assign(np.full(4, 3.0, "float32"))
    images = np.random.default_rng(0).integers(0, 256, (37, 8, 8, 1)).astype("uint8")
    labels = np.arange(37) % 3
    crop = keras.layers.CenterCrop(6, 6)
    expected = keras.ops.convert_to_numpy(encoder(crop(images / 255.0), training=False))
    for data in [(images, labels), _as_dataset((images, labels), 10)]:
        features, got_labels = evaluation.extract_features(encoder, data, crop, batch_size=8)
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got_labels, labels)


_ev = evaluation
INVALID_CALLS = {
    "not data": (lambda e, d: _ev.linear_eval(e, [1, 2, 3], d), "train_data of type list"),
    "lengths": (lambda e, d: _ev.linear_eval(e, (d[0], d[1][:5]), d), "as many images as"),
    "float labels": (lambda e, d: _ev.linear_eval(e, (d[0], d[1] * 1.0), d), "integer class"),
    "unbatched": (
        lambda e, d: _ev.knn_eval(e, tf.data.Dataset.from_tensor_slices(d), d),
        r"call `.batch\(...\)`",
    ),
    "solver": (lambda e, d: _ev.linear_eval(e, d, d, solver="adam"), '`solver` must be "lb'),
    "l2 grid": (lambda e, d: _ev.linear_eval(e, d, d, l2_grid=()), "`l2_grid` must be"),
    "validation split": (
        lambda e, d: _ev.linear_eval(e, d, d, validation_fraction=0.01),
        "validation split is empty",
    ),
    "temperature": (
        lambda e, d: _ev.knn_eval(e, d, d, temperature=0.0),
        "`temperature` must be > 0. Received: temperature=0.0",
    ),
    "k": (lambda e, d: _ev.knn_eval(e, d, d, k=0), "`k` must be a positive integer"),
    "k > n": (
        lambda e, d: _ev.knn_eval(e, d, d, k=41),
        r"at most the number of training examples \(40\). Received: k=41",
    ),
    "encoder": (lambda e, d: _ev.knn_eval(lambda x: x, d, d), "`encoder` must be a `keras"),
    "fraction": (lambda e, d: _ev.fine_tune(e, d, d, 0.0), r"`label_fraction` must be in \("),
    "optimizer": (
        lambda e, d: _ev.fine_tune(e, d, d, learning_rate=0.1, optimizer=keras.optimizers.SGD()),
        "either `optimizer` or `learning_rate`",
    ),
    "head layers": (
        lambda e, d: _ev.fine_tune(e, d, d, head=e, head_layers=1),
        r"`head_layers` must be an integer in \[0, 0\]",
    ),
    "4-D features": (
        lambda e, d: _ev.knn_eval(keras.Sequential([keras.Input((2, 2, 1))]), d, d),
        "include_top=False, pooling='avg'",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_CALLS))
def test_arguments_are_validated(case):
    call, match = INVALID_CALLS[case]
    data = (np.random.default_rng(0).random((40, 2, 2, 1), "float32"), np.arange(40) % 2)
    with pytest.raises(ValueError, match=match):
        call(_flatten_encoder((2, 2, 1)), data)


# --------------------------------------------------------------------------- training


def _dense_encoder(dim, seed=0):
    return keras.Sequential(
        [
            keras.Input((dim,)),
            keras.layers.Dense(
                16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed)
            ),
        ]
    )


@pytest.mark.parametrize("form", ["arrays", "dataset"])
@pytest.mark.parametrize("protocol", ["fine_tune", "supervised_baseline"])
def test_training_protocols_learn_on_copies(protocol, form):
    train = _clusters(1000, 4, 8, separation=10.0, seed=0)[:2]
    test = _clusters(400, 4, 8, separation=10.0, seed=1)[:2]
    encoder = _dense_encoder(8)
    before = [w.copy() for w in encoder.get_weights()]
    train_data = _as_dataset(train) if form == "dataset" else train
    fraction = 0.1 if protocol == "fine_tune" else 1.0
    result = getattr(evaluation, protocol)(
        encoder, train_data, test, label_fraction=fraction, epochs=20, batch_size=32,
        learning_rate=0.05,
    )
    assert result.accuracy >= 0.95
    assert result.num_train == round(1000 * fraction) and result.num_test == 400
    assert len(result.details["history"]["loss"]) == 20
    for old, new in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(old, new)
    trained = result.model.layers[0]
    assert trained is not encoder
    assert not np.allclose(trained.get_weights()[0], before[0])


def test_fine_tune_subset_from_a_dataset_equals_arrays():
    train = _clusters(500, 3, 8, separation=4.0, seed=0)[:2]
    test = _clusters(200, 3, 8, separation=4.0, seed=1)[:2]
    runs = [
        evaluation.fine_tune(_dense_encoder(8), data, test, 0.1, epochs=3, batch_size=16)
        for data in (train, _as_dataset(train, 37))
    ]
    assert runs[0].num_train == runs[1].num_train == 50
    for a, b in zip(runs[0].model.get_weights(), runs[1].model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_fine_tune_rejects_a_reshuffling_dataset():
    train = _clusters(200, 3, 4, separation=4.0, seed=0)[:2]
    shuffled = tf.data.Dataset.from_tensor_slices(train).shuffle(200).batch(20)
    with pytest.raises(ValueError, match="different examples on a second pass"):
        evaluation.fine_tune(_dense_encoder(4), shuffled, train, 0.5, epochs=1)


@pytest.mark.parametrize("head_layers, expected_dense", [(0, 0), (1, 1), (2, 2), (None, 3)])
def test_fine_tune_copies_the_first_projection_head_layers(head_layers, expected_dense):
    from keras_simclr.models import heads

    head = heads.projection_head(16, num_layers=3, output_dim=8)
    head_weights = [w.copy() for w in head.get_weights()]
    train = _clusters(300, 3, 8, separation=8.0, seed=0)[:2]
    result = evaluation.fine_tune(
        _dense_encoder(8), train, train, 0.5, head=head, head_layers=head_layers,
        epochs=1, batch_size=50, optimizer=keras.optimizers.SGD(0.0),
    )
    middle = result.model.layers[1:-1]
    reference = heads.projection_head_layers(head, expected_dense).layers[1:]
    assert [type(layer) for layer in middle] == [type(layer) for layer in reference]
    assert result.details["head_layers"] == expected_dense
    for copy, source in zip(middle, reference):
        assert copy is not source
        # The trainable weights were copied (a zero learning rate keeps them).
        for a, b in zip(copy.trainable_weights, source.trainable_weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    for old, new in zip(head_weights, head.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_augment_is_applied_to_training_batches_only():
    train = _clusters(400, 4, 8, separation=10.0, seed=0)[:2]
    calls = []

    def erase(images):
        calls.append(images.shape)
        return images * 0.0

    result = evaluation.supervised_baseline(
        _dense_encoder(8), train, train, augment=erase, epochs=5, batch_size=32
    )
    assert calls  # traced into the training pipeline
    # Erased training inputs teach only the prior; clean test inputs cannot help.
    assert result.accuracy <= 0.4
    assert result.details["history"]["loss"][-1] > 0.9 * math.log(4)


@pytest.mark.distributed
def test_two_replicas_train_like_one_device(two_cpu_strategy, one_cpu_strategy):
    train = _clusters(256, 3, 8, separation=3.0, seed=0)[:2]
    test = _clusters(100, 3, 8, separation=3.0, seed=1)[:2]
    results = []
    for strategy in (two_cpu_strategy, one_cpu_strategy):
        with strategy.scope():
            results.append(
                evaluation.supervised_baseline(
                    _dense_encoder(8), train, test, epochs=2, batch_size=64, learning_rate=0.5
                )
            )
    np.testing.assert_allclose(
        results[0].details["history"]["loss"], results[1].details["history"]["loss"], rtol=1e-5
    )
    for a, b in zip(results[0].model.get_weights(), results[1].model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert results[0].accuracy == results[1].accuracy


# --------------------------------------------------------------------------- records


def _result(protocol="linear (lbfgs)", accuracy=0.75, dataset="toy"):
    return evaluation.EvaluationResult(
        dataset=dataset, protocol=protocol, accuracy=accuracy, top5_accuracy=0.97,
        num_train=100, num_test=50, epochs=None, seconds=1.5,
        details={"l2": np.float64(1e-4), "history": {"loss": [np.float32(2.0), 1.5]}},
    )


def test_evaluation_result_round_trips_and_is_registered():
    result = _result()
    config = json.loads(json.dumps(result.get_config()))
    assert evaluation.EvaluationResult.from_config(config) == result
    assert set(config) == {f.name for f in evaluation.dataclasses.fields(result)} - {"model"}
    registered = keras.saving.get_registered_object("keras_simclr>EvaluationResult")
    assert registered is evaluation.EvaluationResult
    with pytest.raises(ValueError, match="`accuracy` must be a fraction in"):
        evaluation.EvaluationResult("toy", "knn", 75.0, 0.9, 1, 1)


def test_write_results_merges_and_reads_back(tmp_path):
    path = str(tmp_path / "run" / "results.json")
    evaluation.write_results([_result(), _result("knn (k=200, T=0.1)", 0.6)], path)
    merged = evaluation.write_results(
        [_result(accuracy=0.8), _result(dataset="other")], path
    )
    read = evaluation.read_results(path)
    assert read == merged
    assert [(r.dataset, r.protocol, r.accuracy) for r in read] == [
        ("toy", "linear (lbfgs)", 0.8),
        ("toy", "knn (k=200, T=0.1)", 0.6),
        ("other", "linear (lbfgs)", 0.75),
    ]
    assert not (tmp_path / "run" / "results.json.tmp").exists()


def test_format_table_lists_every_record():
    table = evaluation.format_table([_result(), _result("fine-tune (1% labels)", 0.5)])
    lines = table.splitlines()
    assert len(lines) == 4 and set(lines[1]) <= {"-", " "}
    assert "75.00" in lines[2] and "97.00" in lines[2] and "1.5s" in lines[2]
    assert lines[3].split()[:3] == ["toy", "fine-tune", "(1%"]
    assert len({len(line) for line in lines[:2]}) == 1


# --------------------------------------------------------------------------- pictures


def _csv_log(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    path = str(tmp_path / "log.csv")
    x, y = np.random.default_rng(0).random((32, 3)), np.arange(32) % 2
    model.fit(x, y, epochs=3, verbose=0, callbacks=[keras.callbacks.CSVLogger(path)])
    return path


@pytest.mark.parametrize("source", ["history", "dict", "csv"])
def test_plot_training_curves_writes_a_png(tmp_path, source):
    history = keras.callbacks.History()
    history.history = {
        "loss": [3.0, 2.0, 1.5],
        "val_loss": [3.2, 2.5, 2.0],
        "probe_accuracy": [0.2, 0.4, 0.5],
    }
    metrics = evaluation._DEFAULT_CURVES
    if source == "dict":
        history = history.history
    elif source == "csv":
        history, metrics = _csv_log(tmp_path), ("loss", "accuracy")
    path = str(tmp_path / "plots" / "curves.png")
    assert evaluation.plot_training_curves(history, path, metrics) == path
    width, height = _png_size(path)
    assert (width, height) == (900, 350)  # two panels of 4.5 x 3.5 inches at 100 dpi


def test_plot_training_curves_needs_a_known_metric(tmp_path):
    with pytest.raises(ValueError, match=r"none of the metrics .* Received keys: \['lr'\]"):
        evaluation.plot_training_curves({"lr": [0.1]}, str(tmp_path / "c.png"))


@pytest.mark.parametrize("method, num_classes", [("pca", 3), ("pca", 30), ("tsne", 3)])
def test_plot_embedding_writes_a_png(tmp_path, method, num_classes):
    if method == "tsne":
        pytest.importorskip("sklearn")
    features, labels, _ = _clusters(400, num_classes, 5, separation=6.0, seed=0)
    path = str(tmp_path / "embedding.png")
    # One OpenMP thread: t-SNE's threads ran 5x slower on the shared test machine.
    with threadpoolctl.threadpool_limits(limits=1):
        assert evaluation.plot_embedding(features, labels, path, method, max_points=150) == path
    assert _png_size(path) == (650, 550)
    image = pytest.importorskip("matplotlib.image").imread(path)
    assert image[..., :3].std() > 0.05  # points were drawn


def test_plot_embedding_from_an_encoder(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (60, 4, 4, 1)).astype("uint8")
    path = str(tmp_path / "embedding.png")
    evaluation.plot_embedding(
        _flatten_encoder((4, 4, 1)), (images, np.arange(60) % 4), path,
        class_names=["a", "b", "c", "d"],
    )
    assert _png_size(path) == (650, 550)


def test_plotting_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install keras-simclr\[plot\]"):
        evaluation.plot_training_curves({"loss": [1.0]}, str(tmp_path / "c.png"))
    with pytest.raises(ImportError, match=r"pip install keras-simclr\[plot\]"):
        evaluation.plot_embedding(np.zeros((4, 2)), np.arange(4), str(tmp_path / "e.png"))


def test_tsne_without_scikit_learn(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    features, labels, _ = _clusters(50, 2, 3, separation=4.0, seed=0)
    with pytest.raises(ImportError, match="method='tsne' needs scikit-learn"):
        evaluation.plot_embedding(features, labels, str(tmp_path / "e.png"), "tsne")
    with caplog.at_level(logging.INFO, logger="keras_simclr.evaluation"):
        evaluation.plot_embedding(features, labels, str(tmp_path / "e.png"), "auto")
    assert "plotting PCA instead of t-SNE" in caplog.text
    assert _png_size(str(tmp_path / "e.png")) == (650, 550)


def test_docstring_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write results.json and PNGs
    results = doctest.testmod(evaluation, extraglobs=vars(evaluation), raise_on_error=True)
    assert results.attempted > 20
    assert (tmp_path / "results.json").exists() and (tmp_path / "embedding.png").exists()


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_trained_encoder_beats_a_random_one_on_fashion_mnist():
    from keras_simclr.data import load_fashion_mnist

    train = load_fashion_mnist(split="train[:4000]")
    test = load_fashion_mnist(split="test[:1500]")
    layers = [keras.Input((28, 28, 1))]
    for seed, width in enumerate((16, 32, 64)):
        layers += [
            keras.layers.Conv2D(
                width, 3, strides=2, padding="same", use_bias=False,
                kernel_initializer=keras.initializers.HeNormal(seed),
            ),
            # A short run: momentum 0.9 lets the moving statistics settle in it.
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.ReLU(),
        ]
    random_encoder = keras.Sequential([*layers, keras.layers.GlobalAveragePooling2D()])

    supervised = evaluation.supervised_baseline(
        random_encoder, train, test, epochs=3, batch_size=32, learning_rate=0.2
    )
    random_probe = evaluation.linear_eval(random_encoder, train, test)
    trained_probe = evaluation.linear_eval(supervised.model.layers[0], train, test)
    # Measured: random 0.76, trained 0.84 (supervised head 0.83); chance is 0.1.
    assert trained_probe.accuracy > random_probe.accuracy + 0.04
    assert trained_probe.accuracy > 0.78
    assert random_probe.accuracy > 0.5
    assert supervised.accuracy > 0.7


def test_precomputed_features_give_the_same_results_as_the_encoder():
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(120, 4, 4, 1)).astype("float32")
    labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    train, test = (images[:80], labels[:80]), (images[80:], labels[80:])
    features = [evaluation.extract_features(encoder, split) for split in (train, test)]
    for protocol in (evaluation.linear_eval, functools.partial(evaluation.knn_eval, k=5)):
        from_images = protocol(encoder, train, test)
        from_features = protocol(None, *features)
        assert from_features.accuracy == from_images.accuracy
        assert from_features.top5_accuracy == from_images.top5_accuracy
    dataset = tf.data.Dataset.from_tensor_slices(features[0]).batch(8)
    with pytest.raises(ValueError, match="encoder=None"):
        evaluation.linear_eval(None, dataset, features[1])
    with pytest.raises(ValueError, match="2-D features"):
        evaluation.knn_eval(None, train, test, k=5)
