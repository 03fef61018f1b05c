"""NT-Xent against the paper's formula; gradients, stability, validation, saving.

The cross-replica behaviour (N replicas == one device) is tested in
test_distribute.py.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import losses


def _reference(z_a, z_b, temperature, normalize):
    """NT-Xent from Eq. 1 / Algorithm 1 of the paper, one anchor at a time.

    Views are numbered [a_1..a_N, b_1..b_N]; anchor k's positive is its pair, the
    candidates are the 2N - 1 other views. Returns the mean loss, accuracy and
    entropy over the 2N anchors, the per-anchor losses and the (2N, 2N)
    similarity / temperature matrix (diagonal left at 0).
    """
    z = np.concatenate([z_a, z_b]).astype(np.float64)
    if normalize:
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
    size = len(z)
    per_anchor, correct, entropy = [], [], []
    scores = np.zeros((size, size))
    for k in range(size):
        positive = (k + size // 2) % size
        others = [j for j in range(size) if j != k]
        logits = np.array([z[k] @ z[j] / temperature for j in others])
        scores[k, others] = logits
        log_denominator = np.max(logits) + np.log(
            np.sum(np.exp(logits - np.max(logits)))
        )
        log_p = logits - log_denominator
        per_anchor.append(-log_p[others.index(positive)])
        correct.append(others[int(np.argmax(logits))] == positive)
        entropy.append(-np.sum(np.exp(log_p) * log_p))
    per_anchor = np.array(per_anchor)
    return per_anchor.mean(), np.mean(correct), np.mean(entropy), per_anchor, scores


def _pairs(n, d, seed, noise=0.5, dtype="float32"):
    rng = np.random.default_rng(seed)
    z_a = rng.normal(size=(n, d))
    z_b = z_a + noise * rng.normal(size=(n, d))
    # Unit-scale dot products keep un-normalised logits in a realistic range.
    return (z_a / np.sqrt(d)).astype(dtype), (z_b / np.sqrt(d)).astype(dtype)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("n, d", [(1, 3), (3, 2), (16, 32)])
def test_matches_numpy_reference(n, d, temperature, normalize):
    z_a, z_b = _pairs(n, d, seed=n * 100 + d)
    result = losses.nt_xent(z_a, z_b, temperature=temperature, normalize=normalize)
    loss, accuracy, entropy, _, scores = _reference(z_a, z_b, temperature, normalize)

    np.testing.assert_allclose(result.loss, loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.accuracy, accuracy, atol=1e-6)
    np.testing.assert_allclose(result.entropy, entropy, rtol=1e-5, atol=1e-5)
    for value in (result.loss, result.accuracy, result.entropy):
        assert value.dtype == tf.float32 and value.shape == ()

    logits = result.logits.numpy()
    assert logits.dtype == np.float32 and logits.shape == (2 * n, 2 * n)
    np.testing.assert_array_equal(result.labels, (np.arange(2 * n) + n) % (2 * n))
    np.testing.assert_array_equal(np.diag(logits), -losses.LARGE_NUM)
    off_diagonal = ~np.eye(2 * n, dtype=bool)
    np.testing.assert_allclose(
        logits[off_diagonal], scores[off_diagonal], rtol=1e-5, atol=1e-5
    )


def test_single_pair_has_only_its_positive():
    # With N = 1 the positive is the only candidate: zero loss and entropy.
    z_a, z_b = _pairs(1, 4, seed=0)
    result = losses.nt_xent(z_a, z_b)
    assert float(result.loss) == pytest.approx(0.0, abs=1e-6)
    assert float(result.accuracy) == 1.0
    assert float(result.entropy) == pytest.approx(0.0, abs=1e-6)


def test_normalizes_each_row_not_the_batch():
    # Rescaling single rows must not change the cosine similarities (the
    # `l2_normalize` without axis=1 pitfall would).
    z_a, z_b = _pairs(5, 8, seed=1)
    scale = np.arange(1, 6, dtype="float32")[:, None]
    base = losses.nt_xent(z_a, z_b)
    scaled = losses.nt_xent(z_a * scale, z_b * scale[::-1])
    np.testing.assert_allclose(scaled.loss, base.loss, rtol=1e-6)
    np.testing.assert_allclose(scaled.logits, base.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_gradient_matches_finite_differences(normalize):
    z_a, z_b = _pairs(3, 4, seed=2, dtype="float64")
    temperature = 0.3
    variables = [tf.constant(z_a), tf.constant(z_b)]
    with tf.GradientTape() as tape:
        tape.watch(variables)
        loss = losses.nt_xent(
            *variables, temperature=temperature, normalize=normalize
        ).loss
    gradients = [g.numpy() for g in tape.gradient(loss, variables)]

    def reference_loss(a, b):
        return _reference(a, b, temperature, normalize)[0]

    epsilon = 1e-6
    for which, gradient in enumerate(gradients):
        numeric = np.zeros_like(gradient)
        for index in np.ndindex(gradient.shape):
            inputs_plus = [z_a.copy(), z_b.copy()]
            inputs_minus = [z_a.copy(), z_b.copy()]
            inputs_plus[which][index] += epsilon
            inputs_minus[which][index] -= epsilon
            numeric[index] = (
                reference_loss(*inputs_plus) - reference_loss(*inputs_minus)
            ) / (2 * epsilon)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-9)


def _finite_loss_and_gradients(z_a, z_b, temperature, normalize=True):
    z_a, z_b = tf.constant(z_a), tf.constant(z_b)
    with tf.GradientTape() as tape:
        tape.watch([z_a, z_b])
        result = losses.nt_xent(z_a, z_b, temperature=temperature, normalize=normalize)
    gradients = tape.gradient(result.loss, [z_a, z_b])
    assert result.logits.dtype == tf.float32
    logits = result.logits.numpy()
    assert np.all(np.isfinite(logits))
    assert np.all(
        logits[~np.eye(len(logits), dtype=bool)] > -1e6
    ), "only the diagonal is masked"
    for value in (result.loss, result.accuracy, result.entropy):
        assert np.isfinite(float(value))
    for gradient in gradients:
        assert gradient.dtype == z_a.dtype
        assert np.all(np.isfinite(tf.cast(gradient, tf.float32).numpy()))
    return result


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_stable_at_small_temperature_with_nearly_identical_views(dtype):
    z_a, z_b = _pairs(8, 16, seed=3, noise=1e-4)
    z_a, z_b = tf.cast(z_a, dtype), tf.cast(z_b, dtype)
    result = _finite_loss_and_gradients(z_a, z_b, temperature=0.01)
    # Low-precision inputs are upcast before any arithmetic: the same values given
    # as float32 give the same result.
    reference = losses.nt_xent(tf.cast(z_a, "float32"), tf.cast(z_b, "float32"), 0.01)
    np.testing.assert_allclose(result.loss, reference.loss, rtol=1e-6)
    np.testing.assert_allclose(result.logits, reference.logits, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_stable_when_all_projections_coincide(dtype):
    # All candidates tie: the loss is ln(2N - 1) and the entropy is maximal.
    n = 6
    z = np.ones((n, 5), dtype=dtype)
    result = _finite_loss_and_gradients(z, z, temperature=0.01)
    np.testing.assert_allclose(result.loss, math.log(2 * n - 1), rtol=1e-5)
    np.testing.assert_allclose(result.entropy, math.log(2 * n - 1), rtol=1e-5)


def test_stable_with_all_zero_projections():
    z_a, z_b = _pairs(4, 3, seed=4)
    z_a[1] = 0.0
    _finite_loss_and_gradients(z_a, z_b, temperature=0.1)


def test_compiles_with_xla():
    z_a, z_b = _pairs(6, 8, seed=5)
    compiled = tf.function(
        lambda a, b: losses.nt_xent(a, b, temperature=0.2)[:3], jit_compile=True
    )
    np.testing.assert_allclose(
        compiled(z_a, z_b), losses.nt_xent(z_a, z_b, temperature=0.2)[:3], rtol=1e-5
    )


def test_metric_helpers_on_known_logits():
    masked = -losses.LARGE_NUM
    logits = np.array(
        [[masked, 1.0, 3.0], [2.0, masked, 2.0 - math.log(2.0)], [0.0, 0.0, masked]],
        dtype="float32",
    )
    labels = np.array([2, 2, 0])
    np.testing.assert_array_equal(
        losses.contrastive_accuracy(logits, labels), [1.0, 0.0, 1.0]
    )
    p = np.array([1.0, 0.5]) / 1.5  # row 1: exp(2) : exp(2)/2
    np.testing.assert_allclose(
        losses.contrastive_entropy(logits),
        [
            -sum(
                q * math.log(q)
                for q in (1 / (1 + math.e**2), math.e**2 / (1 + math.e**2))
            ),
            -np.sum(p * np.log(p)),
            math.log(2.0),
        ],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "z_a_shape, z_b_shape, kwargs, message",
    [
        ((4, 8), (4, 8), {"temperature": 0.0}, "Received: temperature=0.0"),
        ((4, 8), (4, 8), {"temperature": -0.5}, "Received: temperature=-0.5"),
        ((4, 8), (4, 8), {"temperature": float("nan")}, "temperature=nan"),
        ((4, 8), (4, 8), {"temperature": "0.1"}, "temperature='0.1'"),
        ((4, 8), (4, 7), {}, r"same shape.*z_b.shape=\(4, 7\)"),
        ((4, 8), (5, 8), {}, r"same shape.*z_a.shape=\(4, 8\)"),
        ((8,), (8,), {}, r"rank-2.*z_a.shape=\(8,\)"),
        ((4, 8), (4, 2, 4), {}, r"rank-2.*z_b.shape=\(4, 2, 4\)"),
    ],
)
def test_invalid_arguments_raise(z_a_shape, z_b_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        losses.nt_xent(
            np.ones(z_a_shape, "float32"), np.ones(z_b_shape, "float32"), **kwargs
        )


def test_loss_class_matches_function():
    z_a, z_b = _pairs(5, 8, seed=6)
    views = np.stack([z_a, z_b], axis=1)
    loss = losses.NTXent(temperature=0.2)
    np.testing.assert_allclose(
        loss(None, views), losses.nt_xent(z_a, z_b, 0.2).loss, rtol=1e-6
    )

    per_example = losses.NTXent(temperature=0.2, reduction=None)(None, views)
    per_anchor = _reference(z_a, z_b, 0.2, True)[3]
    np.testing.assert_allclose(
        per_example, (per_anchor[:5] + per_anchor[5:]) / 2, rtol=1e-5
    )

    weights = np.array([1.0, 0.0, 2.0, 0.0, 1.0], "float32")
    np.testing.assert_allclose(
        loss(None, views, sample_weight=weights),
        np.sum(weights * per_example) / 5,
        rtol=1e-5,
    )


def test_loss_class_validates():
    with pytest.raises(ValueError, match="Received: temperature=0"):
        losses.NTXent(temperature=0)
    with pytest.raises(
        ValueError, match=r"\(batch_size, 2, dim\).*y_pred.shape=\(4, 8\)"
    ):
        losses.NTXent()(None, np.ones((4, 8), "float32"))


# Keras' own `model.save` triggers NumPy 2's copy-keyword deprecation warning.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_loss_class_serializes(tmp_path):
    loss = losses.NTXent(
        temperature=0.3, normalize=False, reduction="sum", name="contrast"
    )
    config = loss.get_config()
    assert config == {
        "temperature": 0.3,
        "normalize": False,
        "reduction": "sum",
        "name": "contrast",
    }
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert type(restored) is losses.NTXent and restored.get_config() == config

    inputs = keras.Input((2, 3))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    model.compile(optimizer="sgd", loss=loss)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, losses.NTXent)
    assert loaded.loss.get_config() == config
    views = np.random.default_rng(7).normal(size=(6, 2, 3)).astype("float32")
    np.testing.assert_allclose(
        loaded.loss(None, loaded(views)), loss(None, model(views)), rtol=1e-6
    )


def test_loss_class_trains_without_labels():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(32, 1, 6)).astype("float32")
    views = np.concatenate(
        [x, x + 0.3 * rng.normal(size=x.shape).astype("float32")], axis=1
    )
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2, 6))
    model = keras.Model(inputs, keras.layers.Dense(8)(inputs))
    model.compile(
        optimizer=keras.optimizers.SGD(0.5), loss=losses.NTXent(temperature=0.1)
    )
    history = model.fit(views, batch_size=32, epochs=10, verbose=0).history["loss"]
    assert history[-1] < history[0] - 0.2, history
