"""The SimCLR task model: fit(), distribution, probe, saving, bad input."""

import os
import pathlib
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import local_cluster
from keras_simclr import models
from keras_simclr import optimizers

HERE = pathlib.Path(__file__).resolve().parent


def _encoder(channels=3, size=8, synchronized=True, name="encoder"):
    """A small conv encoder with (optionally global) batch norm."""
    inputs = keras.Input((size, size, channels))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(synchronized=synchronized, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name=name)


def _model(
    num_classes=None, augmenter=None, seed=0, temperature=0.5, synchronized=True, probe_average=0.0
):
    keras.utils.set_random_seed(seed)
    encoder = _encoder(synchronized=synchronized)
    head = models.projection_head(8, num_layers=2, output_dim=4, synchronized_bn=synchronized)
    return models.SimCLR(
        encoder, head, augmenter=augmenter, temperature=temperature, num_classes=num_classes,
        probe_average=probe_average,
    )


def _views(n=8, size=8, seed=1):
    rng = np.random.default_rng(seed)
    # Smooth images (upsampled 2x2 grids) stay distinct after global pooling.
    grid = rng.uniform(size=(n, 2, 2, 3))
    base = np.repeat(np.repeat(grid, size // 2, axis=1), size // 2, axis=2).astype("float32")
    noise = rng.normal(scale=0.05, size=(2, n, size, size, 3)).astype("float32")
    return np.clip(base + noise[0], 0, 1), np.clip(base + noise[1], 0, 1)


def _weights(model):
    return [w.numpy() for w in model.weights]


def test_fit_reduces_contrastive_loss():
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    assert_fit_reduces_contrastive_loss(model)


def test_fit_on_a_dataset_does_not_warn_about_keras_shuffle_default():
    # pretraining_dataset() shuffles; Keras would warn that fit()'s default
    # shuffle=True is ignored for a tf.data.Dataset, at every run.
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    dataset = tf.data.Dataset.from_tensor_slices((_views(n=16),)).batch(8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(dataset, epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)], [
        str(w.message) for w in caught
    ]
    # Without the library's default, Keras does warn: the check can fail.
    with pytest.warns(UserWarning, match="shuffle"):
        keras.Model.fit(model, dataset, epochs=1, verbose=0, shuffle=True)


def assert_fit_reduces_contrastive_loss(model):
    """20 epochs on 32 pairs of views: the loss falls, the pairs are found."""
    view_1, view_2 = _views(n=32)
    history = model.fit((view_1, view_2), batch_size=32, epochs=20, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert set(history.history) == {"loss", "contrastive_accuracy", "contrastive_entropy"}
    # 64 anchors, each choosing among 63 candidates: chance is ln(63), and the
    # reference objective is twice the paper's mean.
    assert losses[0] < 2 * np.log(63)
    assert losses[-1] < losses[0] - 0.2, losses
    accuracy = history.history["contrastive_accuracy"]
    assert accuracy[0] < 0.95 and accuracy[-1] > 0.99, accuracy


def _reference_objective(z, n, temperature):
    """google-research/simclr's `add_contrastive_loss`, written out in TensorFlow."""
    z = tf.math.l2_normalize(z, axis=1)
    z_a, z_b = z[:n], z[n:]
    labels = tf.one_hot(tf.range(n), 2 * n)
    masks = tf.one_hot(tf.range(n), n)
    logits_aa = tf.matmul(z_a, z_a, transpose_b=True) / temperature - masks * 1e9
    logits_bb = tf.matmul(z_b, z_b, transpose_b=True) / temperature - masks * 1e9
    logits_ab = tf.matmul(z_a, z_b, transpose_b=True) / temperature
    logits_ba = tf.matmul(z_b, z_a, transpose_b=True) / temperature
    loss_a = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels, tf.concat([logits_ab, logits_aa], 1))
    )
    loss_b = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels, tf.concat([logits_ba, logits_bb], 1))
    )
    return loss_a + loss_b


def _lars():
    return optimizers.LARS(0.5, weight_decay=1e-4)


@pytest.mark.parametrize("objective", ["reference", "paper"])
def test_lars_step_trains_on_the_chosen_objective(objective):
    view_1, view_2 = _views(n=8)
    model = _model()
    model.objective = objective
    initial = _weights(model)
    model.compile(optimizer=_lars())
    logs = model.fit(
        tf.data.Dataset.from_tensors(((view_1, view_2),)), epochs=1, verbose=0
    ).history

    # The same LARS step, by hand, on the reference's objective.
    expected = _model()
    expected.set_weights(initial)
    variables = expected.encoder.trainable_variables + expected.projection_head.trainable_variables
    optimizer = _lars()
    optimizer.build(variables)
    with tf.GradientTape() as tape:
        h = expected.encoder(np.concatenate([view_1, view_2]), training=True)
        loss = _reference_objective(expected.projection_head(h, training=True), 8, 0.5)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    factor = 1.0 if objective == "reference" else 0.5
    np.testing.assert_allclose(logs["loss"][0], factor * float(loss), rtol=1e-5)
    differences = [
        np.abs(a - b).max() for a, b in zip(_weights(model), _weights(expected))
    ]
    if objective == "reference":
        assert max(differences) < 1e-5, differences
    else:
        # Half the objective is not a learning-rate change under LARS: the
        # batch-norm parameters (no trust ratio) take half the step.
        assert max(differences) > 1e-3, differences
    moved = max(np.abs(a - b).max() for a, b in zip(_weights(expected), initial))
    assert moved > 1e-3


def test_l2_weight_decay_is_the_reference_term_on_all_but_batch_norm():
    view_1, view_2 = _views(n=8)
    labels = np.arange(8) % 2
    dataset = tf.data.Dataset.from_tensors(((view_1, view_2), labels))
    trained = {}
    for decay in (0.0, 0.05):
        model = _model(num_classes=2)
        model.l2_weight_decay = decay
        initial = _weights(model)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
        model.fit(dataset, epochs=1, verbose=0)
        trained[decay] = model

    # By hand: the reference's loss + 0.05 * sum(l2_loss(w)) over non-batch-norm w.
    expected = _model(num_classes=2)
    expected.set_weights(initial)
    variables = expected.trainable_variables
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    optimizer.build(variables)
    with tf.GradientTape() as tape:
        h = expected.encoder(np.concatenate([view_1, view_2]), training=True)
        loss = _reference_objective(expected.projection_head(h, training=True), 8, 0.5)
        logits = expected.probe(tf.stop_gradient(h), training=True)
        loss += tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                np.concatenate([labels, labels]), logits, from_logits=True
            )
        )
        loss += 0.05 * tf.add_n(
            [tf.nn.l2_loss(v) for v in variables if not optimizers.is_batch_norm_parameter(v)]
        )
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    for a, b in zip(_weights(trained[0.05]), _weights(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Batch-norm parameters are not decayed; the other (non-zero) weights are.
    for variable, start, decayed in zip(
        trained[0.0].trainable_variables,
        _model(num_classes=2).trainable_weights,
        trained[0.05].trainable_weights,
    ):
        difference = np.abs(variable.numpy() - decayed.numpy()).max()
        if optimizers.is_batch_norm_parameter(variable):
            assert difference == 0, variable.path
        elif np.any(start.numpy()):
            assert difference > 1e-5, variable.path


def test_probe_learns_under_default_lars():
    # h = the channel means, linearly separable by class: the probe must learn
    # them at the default job's LARS settings (its own trust ratio would keep it
    # at about lr x 0.1% of its weights' norm per step).
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=2048)
    images = rng.uniform(0.0, 0.4, size=(2048, 4, 4, 3)).astype("float32")
    images[np.arange(2048), :, :, labels] += 0.4
    inputs = keras.Input((4, 4, 3))
    encoder = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    keras.utils.set_random_seed(0)
    head = models.projection_head(3, num_layers=2, output_dim=4)
    model = models.SimCLR(encoder, head, temperature=0.2, num_classes=3)
    steps = 300
    schedule = optimizers.WarmupCosineDecay(
        optimizers.scaled_learning_rate(0.3, 64), steps // 5, steps
    )
    model.compile(optimizer=optimizers.LARS(schedule, weight_decay=1e-6))
    dataset = (
        tf.data.Dataset.from_tensor_slices(((images, images), labels))
        .repeat()
        .batch(64)
    )
    history = model.fit(dataset, epochs=10, steps_per_epoch=steps // 10, verbose=0)
    assert history.history["probe_accuracy"][-1] > 0.9, history.history["probe_accuracy"]


def _one_step(strategy, view_1, view_2, labels=None, num_classes=None, probe_average=0.0):
    with strategy.scope():
        model = _model(num_classes=num_classes, probe_average=probe_average)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    inputs = ((view_1, view_2),) if labels is None else ((view_1, view_2), labels)
    dataset = tf.data.Dataset.from_tensors(inputs)
    history = model.fit(dataset, epochs=1, verbose=0)
    return model, history.history


@pytest.mark.distributed
def _probe_accuracy_on_scaled_features(scale, probe_batch_norm):
    # h = the channel means times `scale`, linearly separable by class; the probe
    # has its own Adam at the job's learning rate, the encoder nothing to learn.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=1024)
    images = rng.uniform(0.0, 0.4, size=(1024, 4, 4, 3)).astype("float32")
    images[np.arange(1024), :, :, labels] += 0.4
    inputs = keras.Input((4, 4, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    encoder = keras.Model(inputs, keras.layers.Rescaling(scale)(pooled))
    keras.utils.set_random_seed(0)
    model = models.SimCLR(
        encoder,
        models.projection_head(3, num_layers=2, output_dim=4),
        temperature=0.2,
        num_classes=3,
        probe_batch_norm=probe_batch_norm,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), probe_optimizer=keras.optimizers.Adam(1e-2))
    dataset = tf.data.Dataset.from_tensor_slices(((images, images), labels)).batch(64)
    history = model.fit(dataset, epochs=3, verbose=0)
    return history.history["probe_accuracy"][-1]


def test_probe_standardises_h_so_its_learning_rate_fits_any_feature_scale():
    assert models.SimCLR(_encoder(), models.projection_head(8), num_classes=2).probe_batch_norm
    # Features a hundred times smaller than the probe's rate expects: with the batch
    # norm the probe learns as fast as on features of scale 1, without it it lags.
    standardised = _probe_accuracy_on_scaled_features(0.02, probe_batch_norm=True)
    raw = _probe_accuracy_on_scaled_features(0.02, probe_batch_norm=False)
    assert standardised > 0.95, standardised
    assert raw < 0.8, raw
    with pytest.raises(ValueError, match="probe_batch_norm"):
        models.SimCLR(_encoder(), models.projection_head(8), num_classes=2, probe_batch_norm=1)


def _probe_loss_on(model, images, labels):
    """The probe's loss on the encodings of `images` (inference-mode encoder)."""
    logits = model.probe(model.encoder(images, training=False), training=True)
    per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return float(keras.ops.mean(per_example))


def assert_probe_trains_on_the_clean_images(make_model, in_model):
    """One step at learning rate 0: the probe's loss is on the clean images.

    `in_model`: the model augments the images it is given (a noise layer);
    otherwise the batch is `{"views": ..., "images": ...}` as the pipeline makes it.
    """
    view_1, view_2 = _views(n=8)
    clean = _views(n=8, seed=2)[0]
    labels = np.arange(8) % 3
    if in_model:
        model = make_model(keras.layers.GaussianNoise(0.3, seed=1))
        x = clean
    else:
        model = make_model(None)
        x = {"views": (view_1, view_2), "images": clean}
    assert model.probe_on == "images"
    model.compile(
        optimizer=keras.optimizers.SGD(0.0), probe_optimizer=keras.optimizers.SGD(0.0)
    )
    logged = model.fit(x, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)
    logged = logged.history["probe_loss"][0]
    # The encoder's batch norm statistics moved with the views' pass, before the
    # clean images' pass: read them after the step, as the step did.
    np.testing.assert_allclose(logged, _probe_loss_on(model, clean, labels), rtol=1e-5)
    # On the views the loss differs: the check above tells the two apart.
    on_views = _probe_loss_on(model, np.concatenate([view_1, view_2]), np.tile(labels, 2))
    assert abs(logged - on_views) > 1e-3


def _probe_on_images_model(augmenter):
    keras.utils.set_random_seed(0)
    return models.SimCLR(
        _encoder(), models.projection_head(8, num_layers=2, output_dim=4),
        augmenter=augmenter, temperature=0.5, num_classes=3, probe_on="images",
    )


@pytest.mark.parametrize("in_model", [False, True], ids=["pipeline", "in_model"])
def test_probe_on_images_trains_the_probe_on_the_clean_images(in_model):
    assert_probe_trains_on_the_clean_images(_probe_on_images_model, in_model)


def test_probe_on_is_kept_and_checked():
    model = _probe_on_images_model(None)
    assert models.SimCLR.from_config(model.get_config()).probe_on == "images"
    assert _model(num_classes=2).probe_on == "views"  # the reference's probe
    with pytest.raises(ValueError, match="`probe_on` must be one of"):
        models.SimCLR(_encoder(), models.projection_head(8), num_classes=2, probe_on="clean")
    view_1, view_2 = _views(n=8)
    labels = np.arange(8) % 3
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="carry only the views"):
        model.fit((view_1, view_2), labels, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="exactly the keys 'views'"):
        model.fit({"views": (view_1, view_2), "clean": view_1}, labels, batch_size=8, verbose=0)
    views_probe = _model(num_classes=3)
    views_probe.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="probe_on='images'"):
        views_probe.fit(
            {"views": (view_1, view_2), "images": view_1}, labels, batch_size=8, verbose=0
        )


@pytest.mark.parametrize("probe_average", [0.0, 0.5], ids=["probe", "averaged_probe"])
def test_two_replicas_equal_one_device(two_cpu_strategy, one_cpu_strategy, probe_average):
    view_1, view_2 = _views(n=8)
    labels = np.arange(8) % 3
    one, one_logs = _one_step(
        one_cpu_strategy, view_1, view_2, labels, num_classes=3, probe_average=probe_average
    )
    two, two_logs = _one_step(
        two_cpu_strategy, view_1, view_2, labels, num_classes=3, probe_average=probe_average
    )
    assert len(one._probe_averages) == (2 if probe_average else 0)
    for key in one_logs:
        np.testing.assert_allclose(two_logs[key], one_logs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(_weights(one), _weights(two)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    # The step really moved the weights (the comparison above is not vacuous).
    fresh = _model(num_classes=3, probe_average=probe_average)
    moved = max(np.abs(a - b).max() for a, b in zip(_weights(one), _weights(fresh)))
    assert moved > 1e-3


def assert_probe_average_follows_its_rule_and_scores_the_probe(make_model, path):
    """`make_model(probe_average)`: the average of the probe's dense weights after
    each step, what `evaluate` scores, and what a saved model keeps."""
    view_1, view_2 = _views(n=8)
    labels = np.arange(8) % 2
    model = make_model(0.75)
    model.compile(optimizer=keras.optimizers.SGD(0.1), probe_optimizer=keras.optimizers.Adam(0.1))
    dense = model.probe.get_layer("linear_probe_dense")

    def dense_weights():
        return [np.asarray(dense.kernel.numpy()), np.asarray(dense.bias.numpy())]

    expected = dense_weights()
    for average, weight in zip(model._probe_averages, expected):
        np.testing.assert_array_equal(np.asarray(average.numpy()), weight)  # starts there
    for _ in range(3):
        model.fit((view_1, view_2), labels, batch_size=8, epochs=1, verbose=0)
        expected = [0.75 * e + 0.25 * w for e, w in zip(expected, dense_weights())]
    averages = [np.asarray(a.numpy()) for a in model._probe_averages]
    for average, value in zip(averages, expected):
        np.testing.assert_allclose(average, value, rtol=1e-5, atol=1e-7)
    assert max(np.abs(a - w).max() for a, w in zip(averages, dense_weights())) > 1e-3

    # The scored probe is the average: the standardised h times its weights.
    logs = model.evaluate((view_1, view_2), labels, batch_size=8, verbose=0, return_dict=True)
    h = model.encoder(view_1, training=False)
    standardised = np.asarray(model.probe.get_layer("linear_probe_bn")(h, training=False))

    def loss_of(logits):
        log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return -np.mean(log_softmax[np.arange(8), labels])

    averaged = loss_of(standardised @ averages[0] + averages[1])
    np.testing.assert_allclose(logs["probe_loss"], averaged, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(model.probe_logits(h)), standardised @ averages[0] + averages[1], rtol=1e-5, atol=1e-6)
    assert abs(loss_of(np.asarray(model.probe(h, training=False))) - averaged) > 1e-4

    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.probe_average == 0.75
    for a, b in zip(restored._probe_averages, averages):
        np.testing.assert_array_equal(np.asarray(a.numpy()), b)


def test_probe_average_follows_its_rule_and_scores_the_probe(tmp_path):
    assert_probe_average_follows_its_rule_and_scores_the_probe(
        lambda momentum: _model(num_classes=2, probe_average=momentum), tmp_path / "m.keras"
    )


@pytest.mark.parametrize("value", [1.0, -0.1, True, "0.9"])
def test_probe_average_outside_0_1_is_refused(value):
    with pytest.raises(ValueError, match=r"`probe_average` must be a momentum in \[0, 1\)"):
        _model(num_classes=2, probe_average=value)


def test_probe_gradient_does_not_reach_encoder():
    view_1, view_2 = _views(n=8)
    labels = np.arange(8) % 2
    strategy = tf.distribute.get_strategy()
    plain, _ = _one_step(strategy, view_1, view_2)
    probed, logs = _one_step(strategy, view_1, view_2, labels, num_classes=2)
    assert "probe_accuracy" in logs and "probe_loss" in logs
    for a, b in zip(_weights(plain.encoder), _weights(probed.encoder)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_weights(plain.projection_head), _weights(probed.projection_head)):
        np.testing.assert_array_equal(a, b)
    initial = _model(num_classes=2).probe.get_weights()[0]
    assert np.abs(probed.probe.get_weights()[0] - initial).max() > 0


def test_evaluate_reports_probe_and_contrastive_metrics():
    model = _model(num_classes=2)
    model.compile(optimizer="sgd")
    view_1, view_2 = _views(n=8)
    labels = np.arange(8) % 2
    logs = model.evaluate((view_1, view_2), labels, batch_size=8, verbose=0, return_dict=True)
    assert set(logs) == {
        "loss", "contrastive_accuracy", "contrastive_entropy", "probe_loss", "probe_accuracy"
    }
    assert 0 <= logs["probe_accuracy"] <= 1


@pytest.mark.distributed
@pytest.mark.parametrize("strategy_name", ["one_cpu_strategy", "two_cpu_strategy"])
def test_evaluated_probe_is_the_exact_mean_over_uneven_batches(strategy_name, request):
    # 10 images in batches of 4: the last batch holds 2 (one per replica with two),
    # and on two replicas the first batches split 2 + 2. A mean of the batches'
    # means, or a count that assumes full batches, would be off.
    strategy = request.getfixturevalue(strategy_name)
    images, _ = _views(n=10)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    with strategy.scope():
        model = _model(num_classes=3)
        model.compile(optimizer="sgd")
        # A probe that is right on some images and wrong on others.
        kernel = np.random.default_rng(3).normal(size=(8, 3)).astype("float32")
        model.probe.layers[-1].kernel.assign(kernel * 10)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    logs = model.evaluate(dataset, verbose=0, return_dict=True)
    logits = model.probe(model.encoder(images, training=False), training=False).numpy()
    exact_accuracy = np.mean(np.argmax(logits, axis=-1) == labels)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    exact_loss = -np.mean(log_softmax[np.arange(10), labels])
    assert 0 < exact_accuracy < 1, exact_accuracy
    np.testing.assert_allclose(logs["probe_accuracy"], exact_accuracy, rtol=1e-6)
    np.testing.assert_allclose(logs["probe_loss"], exact_loss, rtol=1e-5)


def test_save_load_continues_identically(tmp_path):
    view_1, view_2 = _views(n=8)
    model = _model(num_classes=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    data = ((view_1, view_2), np.arange(8) % 2)
    model.fit(*data, batch_size=8, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / "simclr.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, models.SimCLR)
    assert restored.probe_batch_norm
    assert restored.optimizer.iterations.numpy() == 2
    for a, b in zip(_weights(model), _weights(restored)):
        np.testing.assert_array_equal(a, b)
    model.fit(*data, batch_size=8, epochs=2, shuffle=False, verbose=0)
    restored.fit(*data, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(_weights(model), _weights(restored)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_encoder_and_head_save_alone_and_export(tmp_path):
    model = _model()
    images = _views(n=4)[0]
    for part in (model.encoder, model.projection_head):
        path = tmp_path / f"{part.name}.keras"
        part.save(path)
        loaded = keras.models.load_model(path)
        x = images if part is model.encoder else model.encoder(images)
        np.testing.assert_allclose(loaded(x), part(x), rtol=1e-6)
    model.encoder.export(str(tmp_path / "saved_encoder"))
    served = tf.saved_model.load(str(tmp_path / "saved_encoder"))
    np.testing.assert_allclose(
        served.serve(tf.constant(images)), model.encoder(images), rtol=1e-5, atol=1e-6
    )


def test_retraced_step_still_checks_image_shape():
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    view_1, view_2 = _views(n=8)
    model.fit((view_1, view_2), batch_size=8, epochs=1, verbose=0)
    gray = (view_1[..., :1], view_2[..., :1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="encoder takes"):
        model.fit(gray, batch_size=8, epochs=1, verbose=0)


def test_keras_applications_backbone_as_encoder():
    encoder = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=None, pooling="avg",
        include_preprocessing=False,
    )
    head = models.projection_head(encoder.output_shape[-1], output_dim=8)
    model = models.SimCLR(encoder, head, temperature=0.5)
    model.compile(optimizer="sgd")
    rng = np.random.default_rng(0)
    views = tuple(rng.uniform(size=(2, 4, 32, 32, 3)).astype("float32"))
    logs = model.fit(views, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_step_is_finite(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _model(temperature=0.05)
        optimizer = keras.optimizers.SGD(0.1)
        if policy == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer)
        logs = model.fit(_views(n=8), batch_size=8, epochs=2, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(logs["loss"])), logs
    assert all(w.dtype == "float32" for w in model.trainable_weights)


def test_jit_compile_step_matches_graph_step():
    view_1, view_2 = _views(n=8)
    results = []
    for jit in (False, True):
        model = _model()
        # 0.05 on the reference objective: the same step as 0.1 on the paper's.
        model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=jit)
        logs = model.fit((view_1, view_2), batch_size=8, epochs=2, shuffle=False, verbose=0)
        results.append((logs.history["loss"], _weights(model)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        assert np.all(np.isfinite(b))
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)


class FlipEveryOtherCall(keras.layers.Layer):
    """A deterministic stand-in augmenter: the views differ by a horizontal flip."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False)

    def call(self, images, training=None):
        images = tf.cast(images, "float32") / 255.0 if images.dtype == tf.uint8 else images
        self.calls.assign_add(1)
        return tf.cond(self.calls % 2 == 0, lambda: tf.reverse(images, [2]), lambda: images)


def test_in_model_augmentation_from_uint8_images():
    model = _model(augmenter=FlipEveryOtherCall())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    images = (np.random.default_rng(0).uniform(size=(16, 8, 8, 3)) * 255).astype("uint8")
    logs = model.fit(images, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])
    assert int(model.augmenter.calls.numpy()) == 4  # two views a step, two steps


def _error_of(fn):
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value)


def test_bad_input_messages(two_cpu_strategy):
    view_1, view_2 = _views(n=8)
    model = _model()
    model.compile(optimizer="sgd")
    message = _error_of(lambda: model.fit(view_1, batch_size=8, verbose=0))
    assert "no `augmenter`" in message
    message = _error_of(lambda: model.fit((view_1[:, :, :, 0], view_2[:, :, :, 0]), batch_size=8, verbose=0))
    assert "4-D batch" in message
    message = _error_of(lambda: model.fit((view_1[:, :4], view_2[:, :4]), batch_size=8, verbose=0))
    assert "encoder takes" in message
    message = _error_of(lambda: model.fit((view_1, view_2), np.zeros(8), batch_size=8, verbose=0))
    assert "num_classes" in message
    pair = tf.data.Dataset.from_tensor_slices((view_1, view_2)).batch(8)
    message = _error_of(lambda: model.fit(pair, verbose=0))
    assert "((view_1, view_2),)" in message
    assert "temperature" in _error_of(lambda: _model(temperature=0.0))
    with two_cpu_strategy.scope():
        model = _model()
        model.compile(optimizer="sgd")
    dataset = tf.data.Dataset.from_tensor_slices(((view_1, view_2),))
    message = _error_of(lambda: model.fit(dataset.batch(3, drop_remainder=True), verbose=0))
    assert "multiple of the number of replicas" in message and "3" in message
    # Uneven replicas (a partial last batch) are fine: the loss gathers the sizes.
    history = model.fit(dataset.batch(5), verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_tpu_needs_a_static_batch():
    from keras_simclr.models import simclr

    dataset = tf.data.Dataset.from_tensor_slices(np.zeros((8, 2))).batch(4)
    with pytest.raises(ValueError, match="drop_remainder=True"):
        simclr._check_global_batch(dataset, None, 8, static=True)
    simclr._check_global_batch(dataset.unbatch().batch(8, drop_remainder=True), None, 8, static=True)


@pytest.mark.distributed
def test_mirrored_fit_from_arrays_drops_the_partial_batch(two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = _model()
        model.compile(optimizer="sgd")
    view_1, view_2 = _views(n=10)
    history = model.fit((view_1, view_2), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations.numpy() == 2


@pytest.mark.distributed
@pytest.mark.slow
def test_multi_worker_fit_matches_one_device(tmp_path):
    script = HERE / "multiworker_fit_worker.py"
    local_cluster.run_workers(
        [[sys.executable, str(script), str(tmp_path / f"worker{index}.npz")] for index in range(2)]
    )
    env = dict(os.environ, TF_CONFIG="")
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "single.npz")],
        env=env, check=True, capture_output=True, timeout=240,
    )
    single = np.load(tmp_path / "single.npz")
    for index in range(2):
        worker = np.load(tmp_path / f"worker{index}.npz")
        np.testing.assert_allclose(worker["loss"], single["loss"], rtol=1e-5)
        # Two momentum steps through collective sums: float32 summation order only.
        for key in single.files:
            np.testing.assert_allclose(worker[key], single[key], rtol=1e-4, atol=2e-5, err_msg=key)


@pytest.mark.parametrize("name", ["lars", "momentum", "adam"])
def test_job_applies_weight_decay_as_the_reference_does(name):
    from keras_simclr import runner

    config = runner.Config(optimizer=name, weight_decay=1e-4, train_steps=100)
    plan = runner.plan(config)
    optimizer = runner.build_optimizer(config, plan)
    model = runner.build_model(config, plan)
    if name == "lars":
        assert isinstance(optimizer, optimizers.LARS) and optimizer.weight_decay == 1e-4
        assert model.l2_weight_decay == 0
    else:
        # No decoupled decay (Keras would also decay batch norm): the L2 term.
        assert not optimizer.weight_decay
        assert model.l2_weight_decay == 1e-4


def test_model_saved_before_the_base_class_loads_and_continues_identically():
    # Saved by commit 4c95b1e (tests/saved/make_simclr_before_base.py), SGD with
    # momentum and a separate Adam probe optimizer, then trained one more epoch.
    saved = np.load(HERE / "saved" / "simclr_before_base.npz")
    restored = keras.models.load_model(HERE / "saved" / "simclr_before_base.keras")
    assert isinstance(restored, models.SimCLR)
    assert keras.saving.get_registered_name(models.SimCLR) == "keras_simclr>SimCLR"
    # Options added since default to what the model did then.
    assert sorted(restored.get_config()) == sorted(
        [*saved["config_keys"], "probe_on", "probe_average"]
    )
    assert restored.probe_on == "views" and restored.probe_average == 0.0
    assert (restored.objective, restored.temperature, restored.num_classes) == ("paper", 0.5, 2)
    # Its encoder was saved as a plain functional model, before `ResNet` had a class
    # of its own; it loads as one, with the same layers and weights.
    assert type(restored.encoder).__name__ == "Functional"
    assert not isinstance(restored.encoder, models.ResNet)
    np.testing.assert_allclose(restored(saved["view_1"]), saved["h"], rtol=1e-6, atol=1e-7)
    data = ((saved["view_1"], saved["view_2"]), saved["labels"])
    logs = restored.fit(*data, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(logs["loss"], saved["next_loss"], rtol=1e-6)
    np.testing.assert_allclose(logs["probe_loss"], saved["next_probe_loss"], rtol=1e-6)
    # The reference weights were trained on another CPU: oneDNN's kernels differ in the
    # last bits between CPUs (6e-7 apart on an Intel Xeon), while a lost optimizer state
    # (momentum or Adam moments reset) moves them by more than 1.
    for weight in restored.weights:
        np.testing.assert_allclose(
            weight.numpy(), saved["next/" + weight.path], rtol=1e-5, atol=1e-5, err_msg=weight.path
        )
