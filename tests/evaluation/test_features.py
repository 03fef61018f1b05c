"""keras_simclr.evaluation.features, which every protocol reads its data through.

Linear evaluation and kNN are checked on Gaussian clusters: well separated (every
protocol must be exact) and overlapping (accuracy must land in a band around the
Bayes-optimal rule's accuracy on the same test set); features extract in inference
mode, arguments are checked, precomputed features give the encoder's answers, and the
docstring examples of every evaluation module run."""

import doctest
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import evaluation
from keras_simclr.evaluation import linear

from clusters import as_dataset
from clusters import flatten_encoder
from clusters import gaussian_clusters


# Protocols on data whose answer is known.


PROTOCOLS = {
    "lbfgs": lambda encoder, train, test: evaluation.linear_eval(encoder, train, test),
    "sgd": lambda encoder, train, test: evaluation.linear_eval(
        encoder, train, test, solver="sgd", epochs=30, batch_size=64
    ),
    "knn": lambda encoder, train, test: evaluation.knn_eval(encoder, train, test, k=20),
}


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_separable_clusters_are_classified_exactly(protocol):
    train = gaussian_clusters(600, 5, 8, separation=12.0, seed=0)[:2]
    test = gaussian_clusters(300, 5, 8, separation=12.0, seed=1)[:2]
    encoder = flatten_encoder((8,))
    result = PROTOCOLS[protocol](encoder, train, test)
    assert result.accuracy == 1.0 and result.top5_accuracy == 1.0
    assert (result.num_train, result.num_test) == (600, 300)
    # The same data as a dataset of batches gives the same answer.
    from_dataset = PROTOCOLS[protocol](encoder, as_dataset(train), as_dataset(test))
    assert from_dataset.accuracy == result.accuracy
    assert from_dataset.details.keys() == result.details.keys()


@pytest.mark.parametrize(
    "protocol, below, above",
    [("lbfgs", 0.03, 0.015), ("sgd", 0.03, 0.015), ("knn", 0.07, 0.015)],
)
def test_overlapping_clusters_reach_the_bayes_accuracy(protocol, below, above):
    train = gaussian_clusters(3000, 4, 6, separation=2.5, seed=0)[:2]
    test_h, test_y, means = gaussian_clusters(2000, 4, 6, separation=2.5, seed=1)
    # Equal priors and identity covariances: the Bayes rule is the nearest mean.
    distances = ((test_h[:, None, :] - means[None]) ** 2).sum(axis=-1)
    bayes = np.mean(distances.argmin(axis=1) == test_y)
    assert 0.6 < bayes < 0.9  # a genuinely hard problem
    result = PROTOCOLS[protocol](flatten_encoder((6,)), train, (test_h, test_y))
    assert bayes - below <= result.accuracy <= bayes + above
    assert result.top5_accuracy == 1.0  # 4 classes: top-5 holds them all
    if protocol == "lbfgs":
        assert result.details["l2"] in linear._DEFAULT_L2_GRID
        assert len(result.details["validation_accuracy"]) == len(linear._DEFAULT_L2_GRID)


# Extraction and checks.


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
    for data in [(images, labels), as_dataset((images, labels), 10)]:
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
        call(flatten_encoder((2, 2, 1)), data)


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


@pytest.mark.parametrize("module", ["results", "features", "linear", "knn", "finetune"])
def test_docstring_examples_run(tmp_path, monkeypatch, module):
    monkeypatch.chdir(tmp_path)  # the examples write results.json
    module = getattr(evaluation, module)
    globs = {"keras": keras, "np": np, **vars(evaluation), **vars(module)}
    results = doctest.testmod(module, globs=globs, raise_on_error=True)
    assert results.attempted >= 3
    if module is evaluation.results:
        assert (tmp_path / "results.json").exists()
