"""Tests for keras_simclr/models/heads.py: projection head and linear probe."""

import importlib
import json

import keras
import numpy as np
import pytest

heads = importlib.import_module("keras_simclr.models.heads")
resnet_lib = importlib.import_module("keras_simclr.models.resnet")

_EPSILON = 1e-5
# Keras 3.15's own saving code converts variables with `np.array(x)`, which
# numpy 2 flags; nothing in keras_simclr is involved.
_KERAS_SAVING_WARNING = "ignore:__array__ implementation:DeprecationWarning"


def _randomise_batch_norms(model, seed=0):
    """Gives every batch norm non-trivial gamma, beta and moving statistics."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable in layer.weights:
                low, high = (0.5, 2.0) if variable.name in ("gamma", "moving_variance") else (-1, 1)
                variable.assign(rng.uniform(low, high, variable.shape).astype("float32"))


def _numpy_head(model, h, num_layers, training, stop_after=None):
    """The head's function written from the paper: dense, batch norm, ReLU, ..."""
    x = h.astype("float64")
    stop_after = num_layers if stop_after is None else stop_after
    for layer in range(1, stop_after + 1):
        dense = model.get_layer(f"{model.name}_dense{layer}")
        x = x @ dense.kernel.numpy()
        if dense.use_bias:
            x = x + dense.bias.numpy()
        bn_name = f"{model.name}_bn{layer}"
        if bn_name in {l.name for l in model.layers}:
            bn = model.get_layer(bn_name)
            if training:
                mean, variance = x.mean(axis=0), x.var(axis=0)
            else:
                mean, variance = bn.moving_mean.numpy(), bn.moving_variance.numpy()
            x = (x - mean) / np.sqrt(variance + _EPSILON) * bn.gamma.numpy()
            if bn.center:
                x = x + bn.beta.numpy()
        if layer < num_layers:
            x = np.maximum(x, 0.0)
    return x


def _h(batch, dim, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, dim)).astype("float32")


@pytest.fixture
def bfloat16_policy():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("use_bn", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_projection_head_matches_numpy(num_layers, use_bn, training):
    head = heads.projection_head(
        24, num_layers=num_layers, hidden_dim=16, output_dim=8, use_bn=use_bn
    )
    _randomise_batch_norms(head)
    h = _h(32, 24)
    z = np.asarray(head(h, training=training))
    assert z.shape == (32, 8)
    np.testing.assert_allclose(
        z, _numpy_head(head, h, num_layers, training), rtol=1e-4, atol=1e-4
    )


def test_simclr_v1_head_structure_and_parameter_count():
    head = heads.projection_head(2048)
    dense1, dense2, bn1, bn2 = (
        head.get_layer(f"projection_head_{name}") for name in ("dense1", "dense2", "bn1", "bn2")
    )
    assert (dense1.units, dense2.units) == (2048, 128)
    assert not dense1.use_bias and not dense2.use_bias
    assert bn1.center and bn1.scale and not bn2.center and bn2.scale
    for bn in (bn1, bn2):
        assert bn.momentum == 0.9 and bn.epsilon == 1e-5
    assert head.get_layer("projection_head_relu1") is not None
    assert "projection_head_relu2" not in {layer.name for layer in head.layers}
    trainable = 2048 * 2048 + 2 * 2048 + 2048 * 128 + 128
    non_trainable = 2 * 2048 + 2 * 128
    assert head.count_params() == trainable + non_trainable
    assert sum(int(np.prod(v.shape)) for v in head.trainable_weights) == trainable
    assert all("bias" not in v.path for v in head.weights)
    assert all("bn" in v.path for v in head.weights if "dense" not in v.path)
    # The reference initialises the dense layers with a normal of stddev 0.01.
    assert abs(float(np.std(dense1.kernel.numpy())) - 0.01) < 5e-4


@pytest.mark.parametrize("num_layers, expected_dense", [(0, 0), ("linear", 1), (1, 1), (3, 3)])
def test_head_variants(num_layers, expected_dense):
    head = heads.projection_head(32, num_layers=num_layers, output_dim=8)
    dense_layers = [l for l in head.layers if isinstance(l, keras.layers.Dense)]
    assert len(dense_layers) == expected_dense
    h = _h(4, 32)
    z = np.asarray(head(h, training=False))
    if expected_dense == 0:
        assert not head.weights
        np.testing.assert_array_equal(z, h)
    else:
        assert z.shape == (4, 8)
        # Hidden width defaults to the width of h, as in the paper.
        assert [l.units for l in dense_layers] == [32] * (expected_dense - 1) + [8]


def test_linear_and_one_layer_heads_are_the_same_model():
    linear = heads.projection_head(16, num_layers="linear", output_dim=4)
    one_layer = heads.projection_head(16, num_layers=1, output_dim=4)
    assert linear.get_config() == one_layer.get_config()


@pytest.mark.parametrize("num_layers", [2, 3])
@pytest.mark.parametrize("use_bn", [True, False])
def test_projection_head_layers_truncates_and_shares_weights(num_layers, use_bn):
    head = heads.projection_head(12, num_layers=num_layers, output_dim=6, use_bn=use_bn)
    _randomise_batch_norms(head)
    h = _h(16, 12)
    for k in range(num_layers + 1):
        truncated = heads.projection_head_layers(head, k)
        assert truncated.name == f"projection_head_to_layer{k}"
        output = np.asarray(truncated(h, training=True))
        expected = _numpy_head(head, h, num_layers, training=True, stop_after=k)
        np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)
        assert {id(v) for v in truncated.weights} <= {id(v) for v in head.weights}
    # Training the truncated head trains the head: the variables are the same.
    truncated = heads.projection_head_layers(head, 1)
    kernel = head.get_layer("projection_head_dense1").kernel
    kernel.assign(kernel.numpy() * 2.0)
    np.testing.assert_allclose(
        np.asarray(truncated(h, training=True)),
        _numpy_head(head, h, num_layers, training=True, stop_after=1),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.filterwarnings(_KERAS_SAVING_WARNING)
def test_projection_head_layers_on_a_loaded_head(tmp_path):
    head = heads.projection_head(12, num_layers=3, output_dim=6)
    _randomise_batch_norms(head)
    head.save(tmp_path / "head.keras")
    restored = keras.models.load_model(tmp_path / "head.keras")
    h = _h(8, 12)
    np.testing.assert_allclose(
        np.asarray(heads.projection_head_layers(restored, 2)(h, training=False)),
        np.asarray(heads.projection_head_layers(head, 2)(h, training=False)),
        rtol=1e-6,
    )


@pytest.mark.parametrize("num_layers", [-1, 4, 1.0, True])
def test_projection_head_layers_rejects_out_of_range(num_layers):
    head = heads.projection_head(12, num_layers=3)
    with pytest.raises(ValueError, match=r"between 0 and 3, .* Received: num_layers="):
        heads.projection_head_layers(head, num_layers)


@pytest.mark.parametrize("use_bn", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_linear_probe_matches_numpy(use_bn, training):
    probe = heads.linear_probe(20, num_classes=5, use_bn=use_bn)
    _randomise_batch_norms(probe)
    dense = probe.get_layer("linear_probe_dense")
    dense.bias.assign(np.linspace(-1, 1, 5).astype("float32"))
    h = _h(64, 20) * 3.0 + 2.0
    x = h.astype("float64")
    if use_bn:
        bn = probe.get_layer("linear_probe_bn")
        assert not bn.trainable_weights
        if training:
            mean, variance = x.mean(axis=0), x.var(axis=0)
        else:
            mean, variance = bn.moving_mean.numpy(), bn.moving_variance.numpy()
        x = (x - mean) / np.sqrt(variance + _EPSILON)
    expected = x @ dense.kernel.numpy() + dense.bias.numpy()
    logits = np.asarray(probe(h, training=training))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    trainable = sum(int(np.prod(v.shape)) for v in probe.trainable_weights)
    assert trainable == 20 * 5 + 5


@pytest.mark.filterwarnings(_KERAS_SAVING_WARNING)
@pytest.mark.parametrize(
    "build",
    [
        lambda: heads.projection_head(16, 3, hidden_dim=24, output_dim=8, name="head_v2"),
        lambda: heads.projection_head(16, num_layers="linear", use_bn=False, synchronized_bn=True),
        lambda: heads.projection_head(16, num_layers=0),
        lambda: heads.projection_head(16, synchronized_bn=True),
        lambda: heads.linear_probe(16, 10),
        lambda: heads.linear_probe(16, 10, use_bn=True, synchronized_bn=True, name="probe"),
    ],
)
def test_save_and_load_round_trip(tmp_path, build):
    model = build()
    _randomise_batch_norms(model)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert restored.name == model.name
    # Through JSON, as the file stores it: Keras restores some tuples as lists.
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    h = _h(8, 16)
    for training in (False, True):
        np.testing.assert_array_equal(
            np.asarray(restored(h, training=training)), np.asarray(model(h, training=training))
        )


def test_mixed_bfloat16_policy(bfloat16_policy):
    head = heads.projection_head(32, num_layers=3)
    probe = heads.linear_probe(32, 10, use_bn=True)
    h = _h(8, 32)
    for model in (head, probe):
        out = model(h, training=True)
        assert out.dtype == "bfloat16"
        assert all(v.dtype == "float32" for v in model.weights)
        assert np.all(np.isfinite(np.asarray(keras.ops.cast(out, "float32"))))


@pytest.mark.parametrize(
    "encoder_builder",
    [
        lambda: resnet_lib.resnet(18, 0.125, (32, 32, 3)),
        lambda: keras.applications.MobileNetV3Small(
            input_shape=(32, 32, 3),
            include_top=False,
            weights=None,
            pooling="avg",
            include_preprocessing=False,
        ),
    ],
    ids=["resnet", "keras_applications"],
)
def test_heads_stack_on_encoders(encoder_builder):
    encoder = encoder_builder()
    dim = encoder.output_shape[-1]
    head = heads.projection_head(dim)
    probe = heads.linear_probe(dim, 10)
    images = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype("float32")
    h = encoder(images, training=False)
    assert np.asarray(head(h, training=True)).shape == (4, 128)
    assert np.asarray(probe(h)).shape == (4, 10)


@pytest.mark.parametrize(
    "builder, kwargs, message",
    [
        (heads.projection_head, dict(input_dim=0), "`input_dim` must be a positive int"),
        (heads.projection_head, dict(input_dim=8.0), "`input_dim` must be a positive int"),
        (heads.projection_head, dict(input_dim=8, num_layers=-1), "`num_layers` must be an int"),
        (heads.projection_head, dict(input_dim=8, num_layers="mlp"), "`num_layers` must be an int"),
        (heads.projection_head, dict(input_dim=8, hidden_dim=0), "`hidden_dim` must be a positive"),
        (heads.projection_head, dict(input_dim=8, output_dim=None), "`output_dim` must be"),
        (heads.projection_head, dict(input_dim=8, use_bn="yes"), "`use_bn` must be a bool"),
        (heads.projection_head, dict(input_dim=8, synchronized_bn=0.5), "`synchronized_bn` must"),
        (heads.linear_probe, dict(input_dim=8, num_classes=0), "`num_classes` must be a positive"),
        (heads.linear_probe, dict(input_dim=-8, num_classes=2), "`input_dim` must be a positive"),
        (heads.linear_probe, dict(input_dim=8, num_classes=2, use_bn=2), "`use_bn` must be a bool"),
    ],
)
def test_invalid_arguments_raise_clear_errors(builder, kwargs, message):
    with pytest.raises(ValueError, match="Received: ") as error:
        builder(**kwargs)
    assert message in str(error.value)
