"""Tests for keras_simclr.optimizers: LARS, WarmupCosineDecay, scaled_learning_rate."""

import contextlib
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.optimizers import LARS
from keras_simclr.optimizers import WarmupCosineDecay
from keras_simclr.optimizers import scaled_learning_rate


def _lars_reference(w, g, v, lr, momentum, weight_decay, eeta, nesterov, decay, adapt):
    """One LARS step in NumPy, written from SPEC.md's "classic momentum" rule."""
    w, g, v = (np.asarray(a, np.float64) for a in (w, g, v))
    if decay:
        g = g + weight_decay * w
    ratio = 1.0
    if adapt:
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        if w_norm > 0 and g_norm > 0:
            ratio = eeta * w_norm / g_norm
    v = momentum * v + lr * ratio * g
    update = momentum * v + lr * ratio * g if nesterov else v
    return w - update, v


def _schedule_reference(step, base, warmup, total, alpha):
    if step < warmup:
        return base * step / warmup
    if total == warmup:
        return alpha * base
    progress = min(step - warmup, total - warmup) / (total - warmup)
    return base * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress)))


def _momentum_slots(optimizer):
    # Keyed by the slot's own name, without the (auto-numbered) optimizer scopes.
    return {
        v.path.rsplit("/", 1)[-1]: v.numpy()
        for v in optimizer.variables
        if "momentum" in v.path
    }


# A Dense layer with a bias, a batch-norm layer whose name lacks
# "batch_normalization", and a zero-initialised last kernel: at the first step
# that kernel has norm 0 and every variable before it gets a zero gradient.
def _small_model(synchronized=False):
    inputs = keras.Input((5,))
    x = keras.layers.Dense(
        4,
        kernel_initializer=keras.initializers.GlorotUniform(seed=1),
        bias_initializer=keras.initializers.RandomNormal(seed=2),
        name="dense_in",
    )(inputs)
    x = keras.layers.BatchNormalization(
        beta_initializer=keras.initializers.RandomNormal(seed=3),
        synchronized=synchronized,
        name="proj_bn",
    )(x)
    x = keras.layers.Activation("tanh")(x)
    outputs = keras.layers.Dense(3, kernel_initializer="zeros", name="dense_out")(x)
    return keras.Model(inputs, outputs)


def _regression_data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = rng.normal(size=(n, 3)).astype("float32")
    return x, y


def _excluded_by_default(path):
    return path.endswith("/bias") or path.startswith("proj_bn/")


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
@pytest.mark.parametrize("schedule", [False, True], ids=["constant_lr", "schedule"])
def test_lars_steps_match_numpy_reference(nesterov, weight_decay, schedule):
    momentum, eeta, steps = 0.9, 0.01, 5
    if schedule:
        learning_rate = WarmupCosineDecay(0.5, warmup_steps=2, total_steps=6)
    else:
        learning_rate = 0.5
    model = _small_model()
    optimizer = LARS(
        learning_rate,
        momentum=momentum,
        weight_decay=weight_decay,
        eeta=eeta,
        nesterov=nesterov,
    )
    variables = model.trainable_variables
    paths = [v.path for v in variables]
    assert paths == [
        "dense_in/kernel",
        "dense_in/bias",
        "proj_bn/gamma",
        "proj_bn/beta",
        "dense_out/kernel",
        "dense_out/bias",
    ]
    x, y = _regression_data()
    optimizer.build(variables)
    for step in range(steps):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.ops.square(model(x, training=True) - y))
        grads = [g.numpy() for g in tape.gradient(loss, variables)]
        if step == 0:
            # The cases the reference must cover: a zero-norm weight, zero
            # gradients for decayed and excluded variables.
            assert not np.any(variables[4].numpy())
            assert all(not np.any(g) for g in grads[:4])
        before = [v.numpy() for v in variables]
        slots_before = list(_momentum_slots(optimizer).values())
        optimizer.apply(grads, variables)
        lr = _schedule_reference(step, 0.5, 2, 6, 0.0) if schedule else 0.5
        slots_after = list(_momentum_slots(optimizer).values())
        for i, path in enumerate(paths):
            excluded = _excluded_by_default(path)
            expected_w, expected_v = _lars_reference(
                before[i],
                grads[i],
                slots_before[i],
                lr,
                momentum,
                weight_decay,
                eeta,
                nesterov,
                decay=not excluded,
                adapt=not excluded,
            )
            np.testing.assert_allclose(
                slots_after[i], expected_v, rtol=1e-5, atol=1e-9, err_msg=path
            )
            np.testing.assert_allclose(
                variables[i].numpy(), expected_w, rtol=0, atol=2e-7, err_msg=path
            )
    assert optimizer.iterations.numpy() == steps


def _single_variable_step(path, shape, optimizer_kwargs, keras_exclusions):
    """One LARS step on a lone variable; returns it and the four candidate results."""
    rng = np.random.default_rng(7)
    w0 = rng.normal(size=shape).astype("float32")
    g = rng.normal(size=shape).astype("float32")
    scope, name = path.split("/")
    with keras.name_scope(scope):
        variable = keras.Variable(w0, name=name)
    assert variable.path == path
    kwargs = {"momentum": 0.9, "weight_decay": 1.0, "eeta": 0.2, **optimizer_kwargs}
    optimizer = LARS(1.0, **kwargs)
    if keras_exclusions == "var_list":
        optimizer.exclude_from_weight_decay(var_list=[variable])
    elif keras_exclusions == "plain_momentum":
        optimizer.exclude_from_layer_adaptation_and_decay([variable])
    elif keras_exclusions is not None:
        optimizer.exclude_from_weight_decay(var_names=[keras_exclusions])
    optimizer.apply([g], [variable])
    candidates = {
        (decay, adapt): _lars_reference(
            w0,
            g,
            np.zeros(shape),
            lr=1.0,
            momentum=0.9,
            weight_decay=kwargs["weight_decay"],
            eeta=0.2,
            nesterov=False,
            decay=decay,
            adapt=adapt,
        )[0]
        for decay in (False, True)
        for adapt in (False, True)
    }
    return variable.numpy(), candidates


@pytest.mark.parametrize(
    "path, shape, optimizer_kwargs, keras_exclusions, decay, adapt",
    [
        ("dense/kernel", (3, 4), {}, None, True, True),
        ("dense/bias", (4,), {}, None, False, False),
        ("batch_normalization/gamma", (4,), {}, None, False, False),
        ("batch_normalization_3/beta", (4,), {}, None, False, False),
        # Batch norm with a custom name: caught by the gamma/beta rule.
        ("conv2_block1_0_bn/gamma", (4,), {}, None, False, False),
        ("conv2_block1_0_bn/beta", (4,), {}, None, False, False),
        # A two-dimensional "gamma" is not a normalization parameter.
        ("attention/gamma", (3, 4), {}, None, True, True),
        # Without the "batch_normalization" pattern, gamma is an ordinary weight.
        (
            "conv2_block1_0_bn/gamma",
            (4,),
            {"exclude_from_weight_decay": ("bias",)},
            None,
            True,
            True,
        ),
        ("dense/bias", (4,), {"exclude_from_weight_decay": ()}, None, True, True),
        ("dense/bias", (4,), {"exclude_from_weight_decay": "bias"}, None, False, False),
        (
            "dense/kernel",
            (3, 4),
            {"exclude_from_layer_adaptation": ("kernel",)},
            None,
            True,
            False,
        ),
        (
            "dense/bias",
            (4,),
            {"exclude_from_layer_adaptation": ("kernel",)},
            None,
            False,
            True,
        ),
        ("dense/kernel", (3, 4), {"weight_decay": 0.0}, None, False, True),
        # Keras' own exclusion method also removes the trust ratio by default...
        ("dense/kernel", (3, 4), {}, "kernel", False, False),
        ("dense/kernel", (3, 4), {}, "var_list", False, False),
        # The online probe's exclusion removes both, whatever the patterns say.
        ("dense/kernel", (3, 4), {}, "plain_momentum", False, False),
        (
            "dense/kernel",
            (3, 4),
            {"exclude_from_layer_adaptation": ("bias",)},
            "plain_momentum",
            False,
            False,
        ),
        # ...but not when layer adaptation has its own list.
        (
            "dense/kernel",
            (3, 4),
            {"exclude_from_layer_adaptation": ("bias",)},
            "kernel",
            False,
            True,
        ),
    ],
)
def test_exclusion_rules(path, shape, optimizer_kwargs, keras_exclusions, decay, adapt):
    result, candidates = _single_variable_step(
        path, shape, optimizer_kwargs, keras_exclusions
    )
    np.testing.assert_allclose(result, candidates[(decay, adapt)], rtol=1e-5)
    # Every other (decay, adapt) combination must be told apart.
    for other, candidate in candidates.items():
        if other != (decay, adapt) and not (
            optimizer_kwargs.get("weight_decay") == 0.0 and other[1] == adapt
        ):
            assert np.max(np.abs(result - candidate)) > 1e-3, other


def test_keras_exclusion_method_after_build_raises():
    optimizer = LARS(0.1)
    optimizer.build([keras.Variable(np.ones((2, 2), "float32"), name="kernel")])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["kernel"])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_layer_adaptation_and_decay([])


def test_base_class_decoupled_weight_decay_is_not_applied():
    # With a zero gradient and momentum 0 the base class' decoupled decay would
    # shrink an excluded bias by lr * wd * b; LARS must leave it unchanged.
    with keras.name_scope("dense"):
        bias = keras.Variable(np.full((3,), 2.0, "float32"), name="bias")
    optimizer = LARS(0.5, momentum=0.0, weight_decay=0.1)
    optimizer.apply([np.zeros((3,), "float32")], [bias])
    np.testing.assert_array_equal(bias.numpy(), np.full((3,), 2.0))
    assert optimizer.weight_decay == 0.1


@pytest.mark.parametrize("alpha", [0.0, 0.1])
@pytest.mark.parametrize(
    "step, fraction_without_alpha",
    [(0, 0.0), (5, 0.5), (10, 1.0), (60, 0.5), (110, 0.0), (500, 0.0)],
    ids=["start", "mid_warmup", "end_warmup", "mid_decay", "end", "after_end"],
)
def test_schedule_values(alpha, step, fraction_without_alpha):
    base = 2.0
    schedule = WarmupCosineDecay(base, warmup_steps=10, total_steps=110, alpha=alpha)
    if step < 10:
        expected = base * fraction_without_alpha
    else:
        expected = base * (alpha + (1 - alpha) * fraction_without_alpha)
    value = schedule(tf.constant(step, tf.int64))
    assert value.dtype == tf.float32
    np.testing.assert_allclose(float(value), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "warmup_steps, total_steps, alpha",
    [(10, 110, 0.0), (0, 50, 0.0), (7, 40, 0.25), (20, 20, 0.1)],
)
def test_schedule_matches_reference_at_every_step(warmup_steps, total_steps, alpha):
    schedule = WarmupCosineDecay(1.5, warmup_steps, total_steps, alpha)
    steps = np.arange(total_steps + 5)
    values = tf.function(schedule)(tf.constant(steps, tf.int64)).numpy()
    expected = [
        _schedule_reference(s, 1.5, warmup_steps, total_steps, alpha) for s in steps
    ]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)
    if warmup_steps < total_steps:
        # Keras' CosineDecay, parametrised by decay steps, agrees.
        keras_schedule = keras.optimizers.schedules.CosineDecay(
            0.0,
            total_steps - warmup_steps,
            alpha=alpha,
            warmup_target=1.5,
            warmup_steps=warmup_steps,
        )
        keras_values = [float(keras_schedule(int(s))) for s in steps]
        np.testing.assert_allclose(values, keras_values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "base, batch_size, scaling, expected",
    [
        (0.3, 4096, "linear", 4.8),
        (0.3, 256, "linear", 0.3),
        (0.3, 512, "linear", 0.6),
        (0.075, 4096, "sqrt", 4.8),
        (0.075, 256, "sqrt", 1.2),
        (0.075, 100, "sqrt", 0.75),
    ],
)
def test_scaled_learning_rate(base, batch_size, scaling, expected):
    value = scaled_learning_rate(base, batch_size, scaling)
    assert isinstance(value, float)
    assert value == pytest.approx(expected)
    if scaling == "linear":
        assert scaled_learning_rate(base, batch_size) == value


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LARS(-0.1), "`learning_rate` must be >= 0"),
        (lambda: LARS(0.1, momentum=1.0), "`momentum` must be a float in \\[0, 1\\)"),
        (lambda: LARS(0.1, momentum=-0.1), "Received: momentum=-0.1"),
        (lambda: LARS(0.1, eeta=0.0), "`eeta` .* must be > 0"),
        (lambda: LARS(0.1, eeta=-1e-3), "Received: eeta=-0.001"),
        (lambda: LARS(0.1, weight_decay=-1e-6), "`weight_decay` must be a float"),
        (lambda: LARS(0.1, nesterov="yes"), "`nesterov` must be a bool"),
        (
            lambda: LARS(0.1, exclude_from_weight_decay=["bias", 3]),
            "`exclude_from_weight_decay` must be a sequence",
        ),
        (
            lambda: WarmupCosineDecay(-1.0, 1, 10),
            "`base_learning_rate` must be a float >= 0",
        ),
        (lambda: WarmupCosineDecay(1.0, -1, 10), "`warmup_steps` must be an int"),
        (lambda: WarmupCosineDecay(1.0, 1, 0), "`total_steps` must be an int > 0"),
        (lambda: WarmupCosineDecay(1.0, 11, 10), "must be <= `total_steps`"),
        (lambda: WarmupCosineDecay(1.0, 1, 10, alpha=1.5), "`alpha` must be a"),
        (lambda: scaled_learning_rate(0.3, 256, "cubic"), "`scaling` must be one of"),
        (lambda: scaled_learning_rate(0.3, 0), "`batch_size` must be an int > 0"),
        (lambda: scaled_learning_rate(-0.3, 256), "`base_learning_rate` must be"),
    ],
)
def test_invalid_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_lars_config_round_trip_with_schedule():
    schedule = WarmupCosineDecay(scaled_learning_rate(0.3, 512), 10, 100, alpha=0.01)
    optimizer = LARS(
        schedule,
        momentum=0.8,
        weight_decay=1e-4,
        eeta=0.002,
        nesterov=True,
        exclude_from_weight_decay=("bn", "bias"),
        exclude_from_layer_adaptation=("bn",),
        clipnorm=1.0,
        name="my_lars",
    )
    config = optimizer.get_config()
    for key, value in {
        "momentum": 0.8,
        "weight_decay": 1e-4,
        "eeta": 0.002,
        "nesterov": True,
        "exclude_from_weight_decay": ["bn", "bias"],
        "exclude_from_layer_adaptation": ["bn"],
        "clipnorm": 1.0,
        "name": "my_lars",
    }.items():
        assert config[key] == value, key
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, LARS)
    assert isinstance(restored.get_config()["learning_rate"], dict)
    assert restored.get_config() == config
    assert isinstance(restored._learning_rate, WarmupCosineDecay)
    assert restored._learning_rate.get_config() == schedule.get_config()


def test_schedule_config_round_trip():
    schedule = WarmupCosineDecay(1.2, warmup_steps=3, total_steps=30, alpha=0.05)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert isinstance(restored, WarmupCosineDecay)
    assert restored.get_config() == {
        "base_learning_rate": 1.2,
        "warmup_steps": 3,
        "total_steps": 30,
        "alpha": 0.05,
    }
    steps = tf.range(40)
    np.testing.assert_allclose(restored(steps), schedule(steps))


def _tiny_cnn():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(
        8, 3, kernel_initializer=keras.initializers.HeNormal(seed=0), name="conv"
    )(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="conv_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        2, kernel_initializer=keras.initializers.GlorotUniform(seed=1), name="logits"
    )(x)
    return keras.Model(inputs, outputs)


def _stripes_data(n=128):
    # Label 1: vertical stripes, 0: horizontal stripes, plus noise.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=n)
    pattern = np.tile((np.arange(8) % 2).astype("float32"), (8, 1))
    images = np.where(labels[:, None, None] == 1, pattern, pattern.T)
    images = images + 0.3 * rng.normal(size=(n, 8, 8))
    return images[..., None].astype("float32"), labels


def test_fit_reduces_loss_of_tiny_cnn():
    keras.utils.set_random_seed(0)
    images, labels = _stripes_data()
    model = _tiny_cnn()
    # The paper's momentum, trust coefficient and weight decay (the defaults).
    model.compile(
        optimizer=LARS(WarmupCosineDecay(1.0, warmup_steps=4, total_steps=40)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    initial_loss, _ = model.evaluate(images, labels, batch_size=128, verbose=0)
    history = model.fit(
        images, labels, batch_size=32, epochs=10, shuffle=False, verbose=0
    )
    final_loss, accuracy = model.evaluate(images, labels, batch_size=128, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert final_loss < 0.25 * initial_loss, (initial_loss, final_loss)
    assert accuracy > 0.9


def _fit_small_model(strategy=None, steps=3, jit_compile=False, optimizer_wrapper=None):
    x, y = _regression_data(48)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = _small_model(synchronized=strategy is not None)
        optimizer = LARS(
            WarmupCosineDecay(0.5, warmup_steps=1, total_steps=steps),
            weight_decay=1e-3,
            eeta=0.01,
        )
        compiled_optimizer = optimizer
        if optimizer_wrapper is not None:
            compiled_optimizer = optimizer_wrapper(optimizer)
        model.compile(compiled_optimizer, loss="mse", jit_compile=jit_compile)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    return model, optimizer


def _assert_same_state(model_a, optimizer_a, model_b, optimizer_b, atol):
    for a, b in zip(model_a.weights, model_b.weights):
        np.testing.assert_allclose(
            a.numpy(), b.numpy(), rtol=0, atol=atol, err_msg=a.path
        )
    slots_a, slots_b = _momentum_slots(optimizer_a), _momentum_slots(optimizer_b)
    assert slots_a.keys() == slots_b.keys()
    for path in slots_a:
        np.testing.assert_allclose(
            slots_a[path], slots_b[path], rtol=0, atol=atol, err_msg=path
        )
    assert optimizer_a.iterations.numpy() == optimizer_b.iterations.numpy()


@pytest.mark.distributed
def test_two_replicas_match_one_device(two_cpu_strategy, one_cpu_strategy):
    two_model, two_optimizer = _fit_small_model(two_cpu_strategy)
    one_model, one_optimizer = _fit_small_model(one_cpu_strategy)
    momentum_slots = [v for v in two_optimizer.variables if "momentum" in v.path]
    assert len(momentum_slots) == len(two_model.trainable_variables)
    for slot in momentum_slots:
        assert isinstance(slot.value, tf.distribute.DistributedValues), slot.path
        replicas = slot.value.values
        assert len(replicas) == 2
        np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())
    # The model actually moved, so agreement is not trivial.
    assert np.any(two_model.get_layer("dense_out").kernel.numpy())
    _assert_same_state(two_model, two_optimizer, one_model, one_optimizer, atol=1e-6)


def test_jit_compile_matches_graph_mode():
    jit_model, jit_optimizer = _fit_small_model(jit_compile=True)
    graph_model, graph_optimizer = _fit_small_model(jit_compile=False)
    assert np.any(jit_model.get_layer("dense_out").kernel.numpy())
    _assert_same_state(
        jit_model, jit_optimizer, graph_model, graph_optimizer, atol=1e-5
    )


@pytest.fixture
def dtype_policy():
    """Sets a global dtype policy for one test and restores float32 afterwards."""
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize(
    "policy, wrapper, atol",
    [
        ("mixed_float16", keras.optimizers.LossScaleOptimizer, 5e-4),
        ("mixed_bfloat16", None, 5e-3),
    ],
)
def test_mixed_precision_matches_float32(dtype_policy, policy, wrapper, atol):
    reference_model, reference_optimizer = _fit_small_model()
    dtype_policy(policy)
    model, optimizer = _fit_small_model(optimizer_wrapper=wrapper)
    if wrapper is not None:
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert model.optimizer.inner_optimizer is optimizer
    assert model.get_layer("dense_in").compute_dtype == policy.split("_")[1]
    for slot in optimizer.variables:
        assert slot.dtype == "float32" or "iteration" in slot.path, slot.path
    for variable in model.trainable_variables:
        assert variable.dtype == "float32"
        assert np.all(np.isfinite(variable.numpy()))
    _assert_same_state(
        model, optimizer, reference_model, reference_optimizer, atol=atol
    )


def _train_steps(model, steps):
    x, y = _regression_data(16 * steps)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)


def _compiled_small_model():
    model = _small_model()
    model.compile(
        LARS(
            WarmupCosineDecay(0.5, 2, 10), weight_decay=1e-3, eeta=0.01, nesterov=True
        ),
        loss="mse",
    )
    return model


def test_tf_checkpoint_restores_slots_and_continues_identically(tmp_path):
    model = _compiled_small_model()
    _train_steps(model, 3)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    saved_slots = _momentum_slots(model.optimizer)
    assert all(np.any(slot) for slot in saved_slots.values())
    _train_steps(model, 2)

    restored = _compiled_small_model()
    restored.optimizer.build(restored.trainable_variables)
    tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).restore(
        path
    ).assert_consumed()
    restored_slots = _momentum_slots(restored.optimizer)
    for key, value in saved_slots.items():
        np.testing.assert_array_equal(restored_slots[key], value, err_msg=key)
    assert restored.optimizer.iterations.numpy() == 3
    _train_steps(restored, 2)
    _assert_same_state(restored, restored.optimizer, model, model.optimizer, atol=0)


def test_keras_file_round_trip_continues_identically(tmp_path):
    model = _compiled_small_model()
    _train_steps(model, 3)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, LARS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert isinstance(loaded.optimizer._learning_rate, WarmupCosineDecay)
    _assert_same_state(loaded, loaded.optimizer, model, model.optimizer, atol=0)
    _train_steps(model, 2)
    _train_steps(loaded, 2)
    _assert_same_state(loaded, loaded.optimizer, model, model.optimizer, atol=0)
