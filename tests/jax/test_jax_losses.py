"""NT-Xent on Keras' JAX backend: the paper's formula, its gradient, `jax.jit`."""

import jax
import keras
import numpy as np
import pytest

from keras_simclr import losses
from test_losses import _pairs
from test_losses import _reference


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("n, d, temperature", [(1, 3, 0.5), (16, 32, 0.1)])
def test_matches_numpy_reference_under_jit(n, d, temperature, normalize):
    z_a, z_b = _pairs(n, d, seed=n * 100 + d)
    loss, accuracy, entropy, per_anchor, _ = _reference(z_a, z_b, temperature, normalize)

    @jax.jit
    def compiled(z_a, z_b):
        result = losses.nt_xent(z_a, z_b, temperature=temperature, normalize=normalize)
        return result.loss, result.accuracy, result.entropy, result.logits

    values = compiled(z_a, z_b)
    assert all(value.dtype == np.float32 for value in values)
    np.testing.assert_allclose(values[0], loss, rtol=1e-5)
    np.testing.assert_allclose(values[1], accuracy, rtol=1e-6)
    np.testing.assert_allclose(values[2], entropy, rtol=1e-4, atol=1e-6)
    assert values[3].shape == (2 * n, 2 * n)


def test_gradient_matches_finite_differences_of_the_reference():
    z_a, z_b = _pairs(4, 5, seed=7)
    gradient = jax.grad(
        lambda z_a, z_b: losses.nt_xent(z_a, z_b, temperature=0.5).loss, argnums=(0, 1)
    )(z_a, z_b)
    epsilon = 1e-4
    for which, (array, analytic) in enumerate(zip((z_a, z_b), gradient)):
        numeric = np.zeros(array.shape)
        for index in np.ndindex(array.shape):
            shifted = [np.array(z_a, np.float64), np.array(z_b, np.float64)]
            shifted[which][index] += epsilon
            up = _reference(*shifted, 0.5, True)[0]
            shifted[which][index] -= 2 * epsilon
            down = _reference(*shifted, 0.5, True)[0]
            numeric[index] = (up - down) / (2 * epsilon)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-5)


def test_ntxent_loss_trains_a_compiled_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2, 32))
    model = keras.Model(inputs, keras.layers.Dense(16)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=losses.NTXent(temperature=0.5))
    rng = np.random.default_rng(0)
    base = rng.normal(size=(64, 1, 32))
    x = (base + 0.3 * rng.normal(size=(64, 2, 32))).astype("float32")
    history = model.fit(x, epochs=5, batch_size=16, shuffle=False, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 0.1, history["loss"]
