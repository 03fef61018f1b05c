"""LARS and the warm-up + cosine schedule on Keras' JAX backend."""

import jax
import keras
import numpy as np
import pytest

from keras_simclr.optimizers import LARS
from keras_simclr.optimizers import WarmupCosineDecay
from test_optimizers import _lars_reference
from test_optimizers import _schedule_reference


@pytest.mark.parametrize("nesterov", [False, True])
def test_stateless_lars_steps_match_numpy_reference(nesterov):
    rng = np.random.default_rng(0)
    kernel = keras.Variable(rng.normal(size=(3, 4)).astype("float32"), name="kernel")
    bias = keras.Variable(rng.normal(size=(4,)).astype("float32"), name="bias")
    gamma = keras.Variable(rng.normal(size=(4,)).astype("float32"), name="gamma")
    variables = [kernel, bias, gamma]
    optimizer = LARS(0.5, momentum=0.9, weight_decay=0.01, eeta=0.01, nesterov=nesterov)
    optimizer.build(variables)
    # (weight decay, trust ratio): the kernel gets both, the bias and the
    # batch-norm scale neither, as in the reference.
    rules = [(True, True), (False, False), (False, False)]

    step = jax.jit(optimizer.stateless_apply)
    values = [v.value for v in variables]
    state = [v.value for v in optimizer.variables]
    expected = [np.asarray(v) for v in values]
    velocities = [np.zeros_like(w) for w in expected]
    for _ in range(3):
        gradients = [rng.normal(size=w.shape).astype("float32") for w in expected]
        values, state = step(state, gradients, values)
        for i, (decay, adapt) in enumerate(rules):
            expected[i], velocities[i] = _lars_reference(
                expected[i], gradients[i], velocities[i], 0.5, 0.9, 0.01, 0.01,
                nesterov, decay, adapt,
            )
    for value, reference in zip(values, expected):
        np.testing.assert_allclose(value, reference, rtol=1e-5, atol=1e-6)


def test_schedule_under_jit_matches_reference():
    schedule = WarmupCosineDecay(2.0, warmup_steps=10, total_steps=50, alpha=0.1)
    steps = np.arange(0, 60, 7)
    values = jax.jit(jax.vmap(schedule))(steps)
    expected = [_schedule_reference(s, 2.0, 10, 50, 0.1) for s in steps]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-7)
