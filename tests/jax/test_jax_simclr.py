"""SimCLR on Keras' JAX backend: builders, fit, the probe, evaluate, saving, devices.

The step is the JAX trainer's stateless step; `keras.distribution.DataParallel`
over the two CPU devices of conftest.py must train exactly as one device.
"""

import os
import pathlib
import subprocess
import sys

import jax
import keras
import numpy as np
import pytest

from keras_simclr import augment
from keras_simclr import data
from keras_simclr import distribute
from keras_simclr import models
from keras_simclr import optimizers
from test_simclr import _views
from test_simclr import assert_fit_reduces_contrastive_loss
from test_simclr import assert_probe_average_follows_its_rule_and_scores_the_probe
from test_simclr import assert_probe_trains_on_the_clean_images

SAVED = pathlib.Path(__file__).resolve().parents[1] / "saved"


def _encoder(size=8):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="encoder")


def _model(num_classes=None, augmenter=None, seed=0, probe_average=0.0):
    keras.utils.set_random_seed(seed)
    head = models.projection_head(8, num_layers=2, output_dim=4, synchronized_bn=True)
    return models.SimCLR(
        _encoder(), head, augmenter=augmenter, temperature=0.5, num_classes=num_classes,
        probe_average=probe_average,
    )


def _weights(model):
    return [np.asarray(w.numpy()) for w in model.weights]


def test_builders_run_with_global_batch_norm_requested():
    # synchronized_bn=True is what multi-replica TensorFlow runs need; on JAX the
    # batch norm sees the global batch already and Keras rejects the flag.
    encoder = models.resnet(18, width_multiplier=0.125, input_shape=(16, 16, 3), synchronized_bn=True)
    head = models.projection_head(encoder.output_shape[-1], output_dim=16, synchronized_bn=True)
    assert encoder.output_shape == (None, 64)
    h = np.random.default_rng(0).normal(size=(4, 64)).astype("float32")
    assert head(h, training=True).shape == (4, 16)
    assert not any(
        getattr(layer, "synchronized", False) for layer in encoder.layers + head.layers
    )


def test_fit_reduces_contrastive_loss():
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    assert model.jit_compile  # "auto" compiles the JAX step
    assert_fit_reduces_contrastive_loss(model)


def test_probe_trains_with_its_own_optimizer_and_never_reaches_the_encoder():
    view_1, view_2 = _views(n=8)
    labels = np.arange(8) % 2
    plain = _model()
    plain.compile(optimizer=optimizers.LARS(0.5))
    plain.fit((view_1, view_2), batch_size=8, epochs=2, shuffle=False, verbose=0)
    probed = _model(num_classes=2)
    probed.compile(optimizer=optimizers.LARS(0.5), probe_optimizer=keras.optimizers.Adam(0.1))
    logs = probed.fit((view_1, view_2), labels, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert {"probe_loss", "probe_accuracy"} <= set(logs.history)
    for a, b in zip(_weights(plain.encoder), _weights(probed.encoder)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_weights(plain.projection_head), _weights(probed.projection_head)):
        np.testing.assert_array_equal(a, b)
    # Both optimizers' states come back from the stateless step.
    assert int(probed.optimizer.iterations.numpy()) == 2
    assert int(probed.probe_optimizer.iterations.numpy()) == 2
    initial = _model(num_classes=2).probe.get_weights()[-1]
    assert np.abs(probed.probe.get_weights()[-1] - initial).max() > 0


@pytest.mark.parametrize("in_model", [False, True], ids=["pipeline", "in_model"])
def test_probe_on_images_trains_the_probe_on_the_clean_images(in_model):
    def make(augmenter):
        keras.utils.set_random_seed(0)
        head = models.projection_head(8, num_layers=2, output_dim=4)
        return models.SimCLR(
            _encoder(), head, augmenter=augmenter, temperature=0.5, num_classes=3,
            probe_on="images",
        )

    assert_probe_trains_on_the_clean_images(make, in_model)


def test_probe_average_follows_its_rule_and_scores_the_probe(tmp_path):
    assert_probe_average_follows_its_rule_and_scores_the_probe(
        lambda momentum: _model(num_classes=2, probe_average=momentum), tmp_path / "m.keras"
    )


def test_evaluate_reports_probe_and_contrastive_metrics():
    model = _model(num_classes=2)
    model.compile(optimizer="sgd")
    view_1, view_2 = _views(n=8)
    logs = model.evaluate((view_1, view_2), np.arange(8) % 2, batch_size=8, verbose=0, return_dict=True)
    assert set(logs) == {
        "loss", "contrastive_accuracy", "contrastive_entropy", "probe_loss", "probe_accuracy"
    }
    assert logs["loss"] == pytest.approx(2 * np.log(15), abs=0.5)


def test_save_load_continues_identically(tmp_path):
    view_1, view_2 = _views(n=8)
    model = _model(num_classes=2)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        probe_optimizer=keras.optimizers.Adam(0.01),
    )
    inputs = ((view_1, view_2), np.arange(8) % 2)
    model.fit(*inputs, batch_size=8, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / "simclr.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, models.SimCLR)
    assert int(restored.optimizer.iterations.numpy()) == 2
    assert int(restored.probe_optimizer.iterations.numpy()) == 2
    for a, b in zip(_weights(model), _weights(restored)):
        np.testing.assert_array_equal(a, b)
    model.fit(*inputs, batch_size=8, epochs=2, shuffle=False, verbose=0)
    restored.fit(*inputs, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(_weights(model), _weights(restored)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_model_saved_by_tensorflow_continues_as_on_tensorflow():
    # tests/saved: SimCLR saved on TensorFlow (SGD with momentum, a separate Adam
    # probe optimizer) and the weights after one more TensorFlow epoch.
    saved = np.load(SAVED / "simclr_before_base.npz")
    restored = keras.models.load_model(SAVED / "simclr_before_base.keras")
    np.testing.assert_allclose(restored(saved["view_1"]), saved["h"], rtol=1e-5, atol=1e-6)
    inputs = ((saved["view_1"], saved["view_2"]), saved["labels"])
    logs = restored.fit(*inputs, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(logs["loss"], saved["next_loss"], rtol=1e-5)
    np.testing.assert_allclose(logs["probe_loss"], saved["next_probe_loss"], rtol=1e-5)
    for weight in restored.weights:
        np.testing.assert_allclose(
            weight.numpy(), saved["next/" + weight.path], rtol=1e-4, atol=1e-5, err_msg=weight.path
        )


def test_in_model_augmentation_from_uint8_images():
    augmenter = augment.RandomResizedCrop(8, 8, seed=3)
    model = _model(augmenter=augmenter)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    images = (np.random.default_rng(0).uniform(size=(16, 8, 8, 3)) * 255).astype("uint8")
    logs = model.fit(images, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])
    # The layer draws new views at every call, from uint8 images, on JAX too.
    views = [np.asarray(augmenter(images[:4], training=True)) for _ in range(2)]
    assert views[0].shape == (4, 8, 8, 3) and views[0].dtype == np.float32
    assert 0 <= views[0].min() and views[0].max() <= 1
    assert np.abs(views[0] - views[1]).max() > 0.01


def test_fit_on_views_augmented_in_tf_data():
    images = (np.random.default_rng(1).uniform(size=(16, 8, 8, 3)) * 255).astype("uint8")
    dataset = data.pretraining_dataset(
        images, 8, augment=augment.SimCLRAugment(8, preset="cifar", seed=0),
        repeat=False, labels=False, seed=0,
    )
    model = _model()
    model.compile(optimizer=optimizers.LARS(optimizers.WarmupCosineDecay(0.5, 1, 4)))
    logs = model.fit(dataset, epochs=2, verbose=0).history
    assert all(np.isfinite(logs["loss"]))
    assert int(model.optimizer.iterations.numpy()) == 4


def _data_parallel_step(devices, view_1, view_2, labels):
    distribution = keras.distribution.DataParallel(devices=devices)
    with distribution.scope():
        model = _model(num_classes=3, probe_average=0.5)
        model.compile(
            optimizer=keras.optimizers.SGD(0.5), probe_optimizer=keras.optimizers.SGD(0.1)
        )
        history = model.fit((view_1, view_2), labels, batch_size=8, epochs=1, shuffle=False, verbose=0)
        assert distribute.num_batch_shards(model) == len(devices)
    return model, history.history


def test_two_devices_equal_one_device():
    devices = jax.devices("cpu")
    assert len(devices) == 2, "run with XLA_FLAGS=--xla_force_host_platform_device_count=2"
    view_1, view_2 = _views(n=8)
    labels = np.arange(8) % 3
    one, one_logs = _data_parallel_step(devices[:1], view_1, view_2, labels)
    two, two_logs = _data_parallel_step(devices, view_1, view_2, labels)
    for key in one_logs:
        np.testing.assert_allclose(two_logs[key], one_logs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(_weights(one), _weights(two)):
        # Relative to each tensor's scale: at SGD(0.5) the head's first kernel,
        # scale-invariant under its batch norm, grows from 0.01 to about 12 in the
        # step, and float32 sums over two shards round differently at that scale.
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(a).max()))
    # The batch really was split, and the step really moved the weights.
    kernel = two.encoder.get_layer("conv").kernel.value
    assert len(kernel.sharding.device_set) == 2
    fresh = _model(num_classes=3, probe_average=0.5)
    moved = max(np.abs(a - b).max() for a, b in zip(_weights(one), _weights(fresh)))
    assert moved > 1e-3
    # The probe's average (compared above) moved too: the stateless step returns it.
    assert np.abs(np.asarray(two._probe_averages[0].numpy()) - fresh._probe_averages[0].numpy()).max() > 0


def test_data_parallel_sets_the_distribution_and_tf_strategies_explain_the_jax_way():
    try:
        distribution = distribute.data_parallel()
        assert keras.distribution.distribution() is distribution
        assert distribute.num_batch_shards() == 2
    finally:
        keras.distribution.set_distribution(None)
    assert distribute.data_parallel(jax.devices("cpu")[:1]) is None
    with pytest.raises(ValueError, match="data_parallel"):
        distribute.resolve_strategy("mirrored")
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        distribute.split_cpu(2)


def test_data_parallel_fit_from_arrays_drops_the_partial_batch():
    view_1, view_2 = _views(n=10)
    with keras.distribution.DataParallel(devices=jax.devices("cpu")).scope():
        model = _model()
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        with pytest.raises(ValueError, match="multiple of the number of replicas"):
            model.fit((view_1, view_2), batch_size=5, epochs=1, verbose=0)
        model.fit((view_1, view_2), batch_size=4, epochs=1, verbose=0)
    # 10 examples in batches of 4: two steps, the partial batch of 2 dropped.
    assert int(model.optimizer.iterations.numpy()) == 2


_LOAD_ON_TENSORFLOW = """
import sys
import keras
import numpy as np
import keras_simclr  # registers SimCLR, LARS, ... with keras.saving

model = keras.models.load_model(sys.argv[1])
assert keras.backend.backend() == "tensorflow"
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
print(int(model.optimizer.iterations.numpy()), int(model.probe_optimizer.iterations.numpy()))
"""


def test_model_saved_on_jax_loads_on_tensorflow(tmp_path):
    view_1, view_2 = _views(n=8)
    model = _model(num_classes=2)
    model.compile(optimizer=optimizers.LARS(0.5), probe_optimizer=keras.optimizers.Adam(0.01))
    model.fit((view_1, view_2), np.arange(8) % 2, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.save(tmp_path / "simclr.keras")
    np.save(tmp_path / "views.npy", view_1)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_ON_TENSORFLOW, str(tmp_path / "simclr.keras"),
         str(tmp_path / "views.npy"), str(tmp_path / "h.npy")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2", "2"]
    np.testing.assert_allclose(
        np.load(tmp_path / "h.npy"), model.predict(view_1, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_linear_and_knn_evaluation_of_a_trained_encoder():
    # The frozen-feature protocols run on JAX: features by a jax.jit inference,
    # the same numbers as calling the encoder directly.
    from keras_simclr import evaluation

    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    view_1, view_2 = _views(n=64)
    model.fit((view_1, view_2), batch_size=32, epochs=1, verbose=0)
    labels = (np.arange(64) % 2).astype("int64")
    features, extracted_labels = evaluation.extract_features(
        model.encoder, (view_1, labels), batch_size=24
    )
    np.testing.assert_allclose(
        features, np.asarray(model.encoder(view_1, training=False)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(extracted_labels, labels)
    train, test = (view_1[:48], labels[:48]), (view_1[48:], labels[48:])
    linear = evaluation.linear_eval(model.encoder, train, test)
    knn = evaluation.knn_eval(model.encoder, train, test, k=5)
    assert 0 <= linear.accuracy <= 1 and 0 <= knn.accuracy <= 1
    assert linear.num_test == knn.num_test == 16
