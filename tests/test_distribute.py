"""Cross-replica machinery: N replicas train exactly what one device trains.

`MirroredStrategy` runs over the two logical CPUs of conftest.py; the multi-worker
test starts two local worker processes, each running this file as a script
(`python tests/test_distribute.py --worker ...`).
"""

import os
import sys

import numpy as np
import pytest

if __name__ == "__main__":
    # Worker mode: quiet TensorFlow before it loads (conftest does it under pytest).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import local_cluster  # noqa: E402
from keras_simclr import distribute  # noqa: E402
from keras_simclr import losses  # noqa: E402

_INPUT_DIM = 6
_TEMPERATURE = 0.2
_LEARNING_RATE = 0.5


def _cpus():
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def _distribute(strategy, global_values, sizes=None):
    """Splits arrays over the replicas along axis 0 (evenly unless `sizes`)."""
    replicas = strategy.num_replicas_in_sync
    if sizes is None:
        sizes = [len(global_values[0]) // replicas] * replicas
    starts = np.concatenate([[0], np.cumsum(sizes)])

    def value_fn(context):
        index = context.replica_id_in_sync_group
        return tuple(
            tf.constant(value[starts[index] : starts[index + 1]])
            for value in global_values
        )

    return strategy.experimental_distribute_values_from_function(value_fn)


def _first(strategy, per_replica):
    return tf.nest.map_structure(
        lambda v: strategy.experimental_local_results(v)[0].numpy(), per_replica
    )


def _all(strategy, per_replica):
    return [
        tf.nest.map_structure(lambda t: t.numpy(), local)
        for local in strategy.experimental_local_results(per_replica)
    ]


def _pairs(n, seed):
    rng = np.random.default_rng(seed)
    x_a = rng.normal(size=(n, _INPUT_DIM)).astype("float32")
    x_b = (x_a + 0.5 * rng.normal(size=x_a.shape)).astype("float32")
    return x_a, x_b


# Primitives ----------------------------------------------------------------------


def test_identity_without_strategy(one_cpu_strategy):
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    assert distribute.num_replicas() == 1
    assert int(distribute.replica_index()) == 0
    assert distribute.cross_replica_concat(x) is x
    assert distribute.sum_across_replicas(x) is x
    assert distribute.replica_offset(2) == 0

    def replica_fn(x):
        return (
            distribute.num_replicas(),
            distribute.cross_replica_concat(x),
            distribute.sum_across_replicas(x),
        )

    replicas, gathered, summed = one_cpu_strategy.run(
        tf.function(replica_fn), args=(x,)
    )
    assert replicas == 1
    np.testing.assert_array_equal(gathered, x)
    np.testing.assert_array_equal(summed, x)


@pytest.mark.distributed
def test_primitives_across_two_replicas(two_cpu_strategy):
    # Replica r holds r + 2 rows filled with r: uneven on purpose.
    rows = np.concatenate([np.zeros((2, 3)), np.ones((3, 3))]).astype("float32")
    values = _distribute(two_cpu_strategy, [rows], sizes=[2, 3])

    @tf.function
    def replica_fn(values):
        (x,) = values
        return (
            distribute.replica_index(),
            distribute.cross_replica_concat(x),
            distribute.sum_across_replicas(tf.shape(x)[0]),
            distribute.replica_offset(tf.shape(x)[0]),
            distribute.num_replicas(),
        )

    results = _all(two_cpu_strategy, two_cpu_strategy.run(replica_fn, args=(values,)))
    for index, (replica, gathered, total_rows, offset, replicas) in enumerate(results):
        assert replica == index and replicas == 2
        np.testing.assert_array_equal(gathered, rows)
        assert total_rows == 5
        assert offset == [0, 2][index]
    with two_cpu_strategy.scope():
        assert distribute.num_replicas() == 2
        # Cross-replica context: tensors already hold the global batch.
        x = tf.constant(rows)
        assert distribute.cross_replica_concat(x) is x
        assert distribute.replica_offset(5) == 0


@pytest.mark.distributed
def test_gather_routes_gradients_to_their_owner(two_cpu_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3)).astype("float32")
    # Replica r's loss weights the gathered rows with its own coefficients c_r.
    coefficients = rng.normal(size=(2, 4, 3)).astype("float32")
    values = _distribute(two_cpu_strategy, [x])

    @tf.function
    def replica_fn(values):
        (x_local,) = values
        c = tf.constant(coefficients)[distribute.replica_index()]
        with tf.GradientTape() as tape:
            tape.watch(x_local)
            loss = tf.reduce_sum(c * distribute.cross_replica_concat(x_local))
        return tape.gradient(loss, x_local)

    gradients = _all(two_cpu_strategy, two_cpu_strategy.run(replica_fn, args=(values,)))
    # d(sum_r loss_r)/dx_s: every replica's coefficients for the rows s owns.
    expected = coefficients.sum(axis=0)
    np.testing.assert_allclose(np.concatenate(gradients), expected, rtol=1e-6)


# NT-Xent across replicas ---------------------------------------------------------


@pytest.mark.distributed
@pytest.mark.parametrize("sizes", [[3, 3], [4, 2]])
def test_nt_xent_two_replicas_equal_one_device(two_cpu_strategy, sizes):
    rng = np.random.default_rng(1)
    z_a = rng.normal(size=(6, 5)).astype("float32")
    z_b = (z_a + 0.7 * rng.normal(size=z_a.shape)).astype("float32")

    def loss_and_gradients(z_a, z_b):
        with tf.GradientTape() as tape:
            tape.watch([z_a, z_b])
            result = losses.nt_xent(z_a, z_b, temperature=_TEMPERATURE)
        return result, tape.gradient(result.loss, [z_a, z_b])

    expected, expected_gradients = loss_and_gradients(
        tf.constant(z_a), tf.constant(z_b)
    )
    values = _distribute(two_cpu_strategy, [z_a, z_b], sizes=sizes)
    per_replica = two_cpu_strategy.run(
        tf.function(lambda values: loss_and_gradients(*values)), args=(values,)
    )
    replicas = _all(two_cpu_strategy, per_replica)

    for index, field in enumerate(["loss", "accuracy", "entropy"]):
        shares = [result[index] for result, _ in replicas]
        np.testing.assert_allclose(sum(shares), getattr(expected, field), rtol=1e-6)
    # The gather's gradient gives every replica dL/dz of its own rows.
    for view in range(2):
        np.testing.assert_allclose(
            np.concatenate([gradients[view] for _, gradients in replicas]),
            expected_gradients[view],
            rtol=1e-5,
            atol=1e-7,
        )
    # Each replica's logits are the single-device rows of its anchors, and its
    # labels point at the same global columns.
    n, offset = 6, 0
    for (result, _), size in zip(replicas, sizes):
        rows = np.r_[offset : offset + size, n + offset : n + offset + size]
        np.testing.assert_allclose(
            result.logits, expected.logits.numpy()[rows], rtol=1e-5
        )
        np.testing.assert_array_equal(result.labels, expected.labels.numpy()[rows])
        offset += size


def _projection_model(weights=None, views=None):
    # With `views=2` the model maps (batch, 2, dim) inputs view by view.
    model = keras.Sequential(
        [
            keras.Input((_INPUT_DIM,) if views is None else (views, _INPUT_DIM)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(4),
        ]
    )
    if weights is not None:
        model.set_weights(weights)
    return model


def _initial_weights():
    rng = np.random.default_rng(2)
    return [
        (0.5 * rng.normal(size=w.shape)).astype("float32")
        for w in _projection_model().get_weights()
    ]


def _custom_step(strategy, x_a, x_b, weights):
    """One SGD step of NT-Xent with `strategy.run`; returns logs and new weights.

    Each replica takes its shard of the global batch, scores its anchors against
    all replicas' projections, and the Keras optimizer sums the replicas' gradients.
    """
    with strategy.scope():
        model = _projection_model(weights)
        optimizer = keras.optimizers.SGD(_LEARNING_RATE)
        optimizer.build(model.trainable_variables)

    @tf.function
    def step(values):
        def replica_step(values):
            x_a, x_b = values
            n = tf.shape(x_a)[0]
            with tf.GradientTape() as tape:
                z = model(tf.concat([x_a, x_b], axis=0), training=True)
                result = losses.nt_xent(z[:n], z[n:], temperature=_TEMPERATURE)
            gradients = tape.gradient(result.loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return distribute.sum_across_replicas(
                tf.stack([result.loss, result.accuracy, result.entropy])
            )

        return strategy.run(replica_step, args=(values,))

    logs = _first(strategy, step(_distribute(strategy, [x_a, x_b])))
    return logs, model.get_weights()


def _assert_same_step(logs, weights, expected_logs, expected_weights, initial):
    np.testing.assert_allclose(logs, expected_logs, rtol=1e-5, atol=1e-6)
    for w, expected, start in zip(weights, expected_weights, initial):
        np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-5)
    # The step moved the weights far beyond the tolerance, so the match means something.
    assert max(np.abs(e - s).max() for e, s in zip(expected_weights, initial)) > 1e-2


@pytest.mark.distributed
def test_custom_train_step_two_replicas_equals_one_device(
    two_cpu_strategy, one_cpu_strategy
):
    x_a, x_b = _pairs(8, seed=3)
    initial = _initial_weights()
    expected_logs, expected_weights = _custom_step(one_cpu_strategy, x_a, x_b, initial)
    logs, weights = _custom_step(two_cpu_strategy, x_a, x_b, initial)
    _assert_same_step(logs, weights, expected_logs, expected_weights, initial)

    # The loss at the initial weights is the plain single-device NT-Xent.
    z = _projection_model(initial)(np.concatenate([x_a, x_b]))
    plain = losses.nt_xent(z[:8], z[8:], temperature=_TEMPERATURE)
    np.testing.assert_allclose(
        expected_logs, [plain.loss, plain.accuracy, plain.entropy], rtol=1e-5
    )


class _ContrastiveModel(keras.Model):
    """A projection trained with `nt_xent` in a custom `train_step`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.projection = _projection_model()
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "accuracy", "entropy")
        }

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x):
        return self.projection(x)

    def train_step(self, data):
        x_a, x_b = data
        n = tf.shape(x_a)[0]
        with tf.GradientTape() as tape:
            z = self(tf.concat([x_a, x_b], axis=0), training=True)
            result = losses.nt_xent(z[:n], z[n:], temperature=_TEMPERATURE)
        gradients = tape.gradient(result.loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        totals = distribute.sum_across_replicas(
            tf.stack([result.loss, result.accuracy, result.entropy])
        )
        for index, tracker in enumerate(self.trackers.values()):
            tracker.update_state(totals[index])
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def _fit_custom_model(strategy, x_a, x_b, weights):
    with strategy.scope():
        model = _ContrastiveModel(name="contrastive")
        model.projection.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(_LEARNING_RATE))
    dataset = tf.data.Dataset.from_tensor_slices((x_a, x_b)).batch(len(x_a))
    history = model.fit(dataset, epochs=3, shuffle=False, verbose=0).history
    return history, model.projection.get_weights()


def _fit_compiled_ntxent(strategy, x_a, x_b, weights):
    with strategy.scope():
        model = _projection_model(weights, views=2)
        model.compile(
            optimizer=keras.optimizers.SGD(_LEARNING_RATE),
            loss=losses.NTXent(temperature=_TEMPERATURE),
        )
    views = np.stack([x_a, x_b], axis=1)
    history = model.fit(
        views, batch_size=len(x_a), epochs=3, shuffle=False, verbose=0
    ).history
    return history, model.get_weights()


@pytest.mark.distributed
@pytest.mark.parametrize("fit", [_fit_custom_model, _fit_compiled_ntxent])
def test_fit_two_replicas_equals_one_device(two_cpu_strategy, one_cpu_strategy, fit):
    x_a, x_b = _pairs(8, seed=4)
    initial = _initial_weights()
    expected_history, expected_weights = fit(one_cpu_strategy, x_a, x_b, initial)
    history, weights = fit(two_cpu_strategy, x_a, x_b, initial)
    assert history.keys() == expected_history.keys()
    for name in expected_history:
        # The logged values, not halved by Keras' mean over the replicas' logs.
        np.testing.assert_allclose(history[name], expected_history[name], rtol=1e-5)
    assert expected_history["loss"][-1] < expected_history["loss"][0]
    _assert_same_step(
        history["loss"][:1],
        weights,
        expected_history["loss"][:1],
        expected_weights,
        initial,
    )


# Batch sizes and strategies ------------------------------------------------------


def test_per_replica_batch_size():
    assert distribute.per_replica_batch_size(4096, 8) == 512
    assert distribute.per_replica_batch_size(7, 1) == 7


@pytest.mark.parametrize(
    "global_batch_size, replicas, message",
    [
        (
            10,
            4,
            r"batch_size=10 with num_replicas=4\. Use a global batch size of 8 or 12",
        ),
        (3, 4, r"batch_size=3 with num_replicas=4\. Use a global batch size of 4\."),
        (
            0,
            2,
            "`global_batch_size` must be a positive integer. Received: global_batch",
        ),
        (8.0, 2, "Received: global_batch_size=8.0"),
        (8, 0, "`num_replicas` must be a positive integer. Received: num_replicas=0"),
        (8, True, "Received: num_replicas=True"),
    ],
)
def test_per_replica_batch_size_rejects(global_batch_size, replicas, message):
    with pytest.raises(ValueError, match=message):
        distribute.per_replica_batch_size(global_batch_size, replicas)


def test_resolve_local_strategies():
    assert distribute.resolve_strategy() is tf.distribute.get_strategy()
    mirrored = distribute.resolve_strategy("mirrored", devices=_cpus())
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2
    one_device = distribute.resolve_strategy("one_device", devices=[_cpus()[1]])
    assert isinstance(one_device, tf.distribute.OneDeviceStrategy)
    result = one_device.run(tf.function(lambda: tf.constant(1.0) + 1.0))
    assert result.device.endswith("CPU:1")


def test_resolve_rejects_unknown_names_and_misplaced_devices():
    with pytest.raises(
        ValueError,
        match="Received: name='gpu'. Expected one of 'auto', 'one_device', 'mirrored', "
        "'multi_worker', 'tpu'",
    ):
        distribute.resolve_strategy("gpu")
    with pytest.raises(ValueError, match="`devices` applies to"):
        distribute.resolve_strategy("tpu", devices=["/cpu:0"])


class _Recorder:
    """Stands in for a TensorFlow class or function and records its calls."""

    def __init__(self, calls, name):
        self.calls, self.name = calls, name

    def __call__(self, *args, **kwargs):
        self.calls.append((self.name, args, kwargs))
        return self.name


def test_auto_mirrors_over_several_gpus(monkeypatch):
    calls = []
    gpus = [
        tf.config.LogicalDevice("/device:GPU:0", "GPU"),
        tf.config.LogicalDevice("/device:GPU:1", "GPU"),
    ]
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: gpus)
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", _Recorder(calls, "mirrored"))
    assert distribute.resolve_strategy("auto") == "mirrored"
    assert calls == [("mirrored", (["/device:GPU:0", "/device:GPU:1"],), {})]


@pytest.mark.parametrize("name", ["auto", "tpu"])
def test_tpu_strategy_connects_and_initializes_first(monkeypatch, name):
    calls = []
    monkeypatch.setattr(
        tf.distribute.cluster_resolver,
        "TPUClusterResolver",
        _Recorder(calls, "resolver"),
    )
    monkeypatch.setattr(
        tf.config, "experimental_connect_to_cluster", _Recorder(calls, "connect")
    )
    monkeypatch.setattr(
        tf.tpu.experimental, "initialize_tpu_system", _Recorder(calls, "initialize")
    )
    monkeypatch.setattr(tf.distribute, "TPUStrategy", _Recorder(calls, "tpu_strategy"))
    assert distribute.resolve_strategy(name, tpu_name="my-tpu") == "tpu_strategy"
    assert calls == [
        ("resolver", (), {"tpu": "my-tpu"}),
        ("connect", ("resolver",), {}),
        ("initialize", ("resolver",), {}),
        ("tpu_strategy", ("resolver",), {}),
    ]


# Multi-worker --------------------------------------------------------------------


def _run_worker(data_path, output_path):
    """One worker of the multi-worker test: a custom step on its shard, saved.

    The worker keeps TensorFlow's single logical CPU device (one replica per
    worker, which the test checks) and one thread, to share the machine's cores.
    """
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    strategy = distribute.resolve_strategy("multi_worker")
    data = np.load(data_path)
    initial = [data[f"weight_{i}"] for i in range(int(data["num_weights"]))]
    logs, weights = _custom_step(strategy, data["x_a"], data["x_b"], initial)
    np.savez(
        output_path,
        replicas=strategy.num_replicas_in_sync,
        logs=logs,
        **{f"weight_{i}": w for i, w in enumerate(weights)},
    )


@pytest.mark.slow
@pytest.mark.distributed
def test_multi_worker_step_equals_one_device(tmp_path, one_cpu_strategy):
    x_a, x_b = _pairs(8, seed=5)
    initial = _initial_weights()
    expected_logs, expected_weights = _custom_step(one_cpu_strategy, x_a, x_b, initial)

    data_path = tmp_path / "data.npz"
    np.savez(
        data_path,
        x_a=x_a,
        x_b=x_b,
        num_weights=len(initial),
        **{f"weight_{i}": w for i, w in enumerate(initial)},
    )
    local_cluster.run_workers(
        [
            [sys.executable, __file__, "--worker", str(data_path), str(tmp_path / f"worker_{index}.npz")]
            for index in range(2)
        ]
    )

    for index in range(2):
        result = np.load(tmp_path / f"worker_{index}.npz")
        assert int(result["replicas"]) == 2
        weights = [result[f"weight_{i}"] for i in range(len(initial))]
        _assert_same_step(
            result["logs"], weights, expected_logs, expected_weights, initial
        )


def test_split_cpu_returns_the_logical_devices_and_refuses_a_late_resplit():
    # conftest split the CPU in two before TensorFlow initialised its devices.
    devices = distribute.split_cpu(2)
    assert len(devices) == 2 and all("CPU" in d for d in devices)
    strategy = distribute.resolve_strategy("mirrored", devices=devices)
    assert strategy.num_replicas_in_sync == 2
    with pytest.raises(ValueError, match="already initialised 2"):
        distribute.split_cpu(3)
    with pytest.raises(ValueError, match="num_devices"):
        distribute.split_cpu(0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _run_worker(*sys.argv[2:4])
