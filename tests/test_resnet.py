"""Tests for keras_simclr/models/resnet.py: the ResNet v1 encoder and its builder."""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

# `keras_simclr.models.resnet` is also the name of the builder function the package
# re-exports, so the module is fetched by its full name.
resnet_lib = importlib.import_module("keras_simclr.models.resnet")
resnet = resnet_lib.resnet

_BLOCKS = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
    200: (True, (3, 24, 36, 3)),
}


def _expected_param_counts(depth, width, channels, cifar_stem, sk_ratio):
    """(trainable, non-trainable) counts derived from the reference architecture.

    Convolutions have no bias; every batch norm has gamma and beta (trainable)
    and a moving mean and variance (non-trainable).
    """
    bottleneck, stage_blocks = _BLOCKS[depth]

    def scaled(c):
        return max(1, int(c * width))

    def conv(kernel, cin, cout):
        return kernel * kernel * cin * cout

    kernels, bn_channels = 0, 0
    stem = scaled(64)
    if cifar_stem:
        kernels += conv(3, channels, stem)
        bn_channels += stem
    elif sk_ratio > 0:
        half = max(1, stem // 2)
        kernels += conv(3, channels, half) + conv(3, half, half) + conv(3, half, stem)
        bn_channels += half + half + stem
    else:
        kernels += conv(7, channels, stem)
        bn_channels += stem
    cin = stem
    for stage, num_blocks in enumerate(stage_blocks):
        filters = scaled(64 * 2**stage)
        cout = 4 * filters if bottleneck else filters
        for block in range(num_blocks):
            if block == 0:
                kernels += conv(1, cin, cout)
                bn_channels += cout
            if bottleneck:
                kernels += conv(1, cin, filters) + conv(1, filters, cout)
                bn_channels += filters + cout
                if sk_ratio > 0:
                    mid = max(int(filters * sk_ratio), 32)
                    kernels += conv(3, filters, 2 * filters) + filters * mid + mid * 2 * filters
                    bn_channels += 2 * filters + mid
                else:
                    kernels += conv(3, filters, filters)
                    bn_channels += filters
            else:
                kernels += conv(3, cin, filters) + conv(3, filters, filters)
                bn_channels += 2 * filters
            cin = cout
    return kernels + 2 * bn_channels, 2 * bn_channels


def _counts(model):
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    non_trainable = sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    return trainable, non_trainable


def _outputs(model, layer_names, images, training=False):
    probe = keras.Model(model.input, [model.get_layer(n).output for n in layer_names])
    outputs = probe(images, training=training)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(y) for y in outputs]


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype("float32")


@pytest.fixture
def bfloat16_policy():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.fixture(scope="module")
def resnet50():
    return resnet(50)


@pytest.mark.parametrize(
    "depth, width, input_shape, sk_ratio, cifar_stem",
    [
        (18, 0.25, (28, 28, 1), 0.0, True),
        (34, 0.5, (32, 32, 3), 0.0, True),
        pytest.param(101, 0.25, (32, 32, 3), 0.0625, True, marks=pytest.mark.slow),
        pytest.param(152, 0.125, (64, 64, 3), 0.0, False, marks=pytest.mark.slow),
        pytest.param(200, 0.0625, (64, 64, 3), 0.25, False, marks=pytest.mark.slow),
    ],
)
def test_parameter_counts_and_representation_width(
    depth, width, input_shape, sk_ratio, cifar_stem
):
    model = resnet(depth, width, input_shape, sk_ratio=sk_ratio)
    assert _counts(model) == _expected_param_counts(
        depth, width, input_shape[-1], cifar_stem, sk_ratio
    )
    expansion = 4 if depth >= 50 else 1
    assert model.output_shape == (None, expansion * int(512 * width))
    assert model.input_shape == (None,) + input_shape


@pytest.mark.parametrize(
    "kwargs, trainable, non_trainable, h_dim",
    [
        # torchvision's resnet50 without its classifier (25,557,032 - 2,049,000),
        # which is keras.applications.ResNet50 without its convolution biases.
        (dict(depth=50), 23_508_032, 53_120, 2048),
        # The first block of ResNet-18 has a 64->64 projection shortcut, as in
        # the reference (torchvision's resnet18 has 11,176,512 without one).
        (dict(depth=18), 11_180_736, 9_728, 512),
        # SimCLRv2 Table 1 lists ResNet-50 1x with selective kernels as 35M.
        (dict(depth=50, sk_ratio=0.0625), 35_215_584, 61_824, 2048),
    ],
)
def test_parameter_counts_match_published_models(
    request, kwargs, trainable, non_trainable, h_dim
):
    model = request.getfixturevalue("resnet50") if kwargs == dict(depth=50) else resnet(**kwargs)
    assert _counts(model) == (trainable, non_trainable)
    assert _counts(model) == _expected_param_counts(
        kwargs["depth"], 1, 3, False, kwargs.get("sk_ratio", 0.0)
    )
    assert model.output_shape == (None, h_dim)


@pytest.mark.parametrize(
    "depth, width, sk, millions",
    [
        (50, 1, False, 24), (50, 1, True, 35), (50, 2, False, 94), (50, 2, True, 140),
        (101, 1, False, 43), (101, 1, True, 65), (101, 2, False, 170), (101, 2, True, 257),
        (152, 1, False, 58), (152, 1, True, 89), (152, 3, True, 795),
    ],
)
def test_derived_counts_reproduce_simclr_v2_table_1(depth, width, sk, millions):
    # The derivation is checked against built models above; building these
    # (up to 795M parameters) would take gigabytes.
    trainable, _ = _expected_param_counts(depth, width, 3, False, 0.0625 if sk else 0.0)
    assert round(trainable / 1e6) == millions


def test_resnet50_matches_keras_applications_without_biases(resnet50):
    reference = keras.applications.ResNet50(weights=None, include_top=False, pooling="avg")
    conv_biases = sum(
        int(layer.bias.shape[0])
        for layer in reference.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.use_bias
    )
    ours_trainable, ours_non_trainable = _counts(resnet50)
    reference_trainable, reference_non_trainable = _counts(reference)
    assert ours_trainable == reference_trainable - conv_biases
    assert ours_non_trainable == reference_non_trainable
    assert resnet50.output_shape == reference.output_shape == (None, 2048)


@pytest.mark.parametrize(
    "input_shape, cifar_stem, expect_cifar",
    [
        ((32, 32, 3), None, True),
        ((28, 28, 1), None, True),
        ((33, 33, 3), None, False),
        ((64, 64, 3), None, False),
        ((None, None, 3), None, False),
        ((32, 32, 3), False, False),
        ((64, 64, 3), True, True),
    ],
)
def test_cifar_stem_switch(input_shape, cifar_stem, expect_cifar):
    model = resnet(18, 0.125, input_shape, cifar_stem=cifar_stem)
    stem_conv = model.get_layer("stem_conv")
    layer_names = {layer.name for layer in model.layers}
    if expect_cifar:
        assert stem_conv.kernel_size == (3, 3) and stem_conv.strides == (1, 1)
        assert "stem_pool" not in layer_names
    else:
        assert stem_conv.kernel_size == (7, 7) and stem_conv.strides == (2, 2)
        assert "stem_pool" in layer_names
    if input_shape[0] is not None:
        # Total stride 8 with the CIFAR stem, 32 with the ImageNet stem.
        side = input_shape[0]
        stride = 8 if expect_cifar else 32
        expected_side = -(-side // stride)
        assert model.get_layer("block5_2_out").output.shape[1:3] == (expected_side,) * 2
        h = np.asarray(model(_images((2,) + input_shape), training=False))
        assert h.shape == (2, 64) and np.all(np.isfinite(h))


def test_stem_stride_two_halves_every_later_resolution_with_the_same_variables():
    paper = resnet(18, 0.125, (28, 28, 1))
    halved = resnet(18, 0.125, (28, 28, 1), stem_stride=2)
    assert paper.get_layer("stem_conv").strides == (1, 1)
    assert halved.get_layer("stem_conv").strides == (2, 2)
    assert "stem_pool" not in {layer.name for layer in halved.layers}
    assert [v.shape for v in halved.weights] == [v.shape for v in paper.weights]
    # 28 -> 14 after the stem, then 14, 7, 4, 2 through the stages.
    sides = [halved.get_layer(f"block{stage}_2_out").output.shape[1] for stage in (2, 3, 4, 5)]
    assert sides == [14, 7, 4, 2]
    # Fixed padding, as for the other strided convolutions: one pixel before and after.
    images = _images((2, 28, 28, 1))
    (stem,) = _outputs(halved, ["stem_conv"], images)
    kernel = halved.get_layer("stem_conv").kernel.numpy()
    np.testing.assert_allclose(
        stem, _numpy_conv(images, kernel, 2, (1, 1)), rtol=1e-4, atol=1e-4
    )
    config = halved.get_config()
    assert config["stem_stride"] == 2 and paper.get_config()["stem_stride"] == 1
    rebuilt = type(halved).from_config(config)
    assert rebuilt.get_layer("stem_conv").strides == (2, 2)
    # A configuration saved before the argument existed builds the paper's stem.
    del config["stem_stride"]
    assert type(halved).from_config(config).get_layer("stem_conv").strides == (1, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(stem_stride=3), "`stem_stride` must be 1 .* Received: stem_stride=3"),
        (dict(stem_stride=True), "`stem_stride` must be 1"),
        (
            dict(stem_stride=2, input_shape=(64, 64, 3)),
            "applies to the CIFAR stem .* Pass stem_stride=1 or cifar_stem=True",
        ),
        (dict(stem_stride=2, cifar_stem=False), "applies to the CIFAR stem"),
    ],
)
def test_stem_stride_is_checked(kwargs, message):
    kwargs = {"input_shape": (28, 28, 1), **kwargs}
    with pytest.raises(ValueError, match=message):
        resnet(18, 0.125, **kwargs)


def _numpy_conv(x, kernel, stride, pad):
    """Cross-correlation of NHWC `x` with an HWIO kernel, zero-padded by `pad`."""
    x = np.pad(x, ((0, 0), pad, pad, (0, 0)))
    k = kernel.shape[0]
    out_h = (x.shape[1] - k) // stride + 1
    out_w = (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1]))
    for i in range(k):
        for j in range(k):
            window = x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride]
            out += np.einsum("nhwc,co->nhwo", window, kernel[i, j])
    return out


@pytest.mark.parametrize("side", [15, 16])
@pytest.mark.parametrize(
    "layer_name, input_name, kernel_size",
    [("stem_conv", None, 7), ("block3_1_conv1", "block2_2_out", 3)],
)
def test_strided_convolutions_pad_symmetrically_for_any_input_parity(
    side, layer_name, input_name, kernel_size
):
    model = resnet(18, 0.125, (side, side, 3), cifar_stem=False)
    images = _images((2, side, side, 3))
    names = [layer_name] if input_name is None else [input_name, layer_name]
    outputs = _outputs(model, names, images)
    inputs = images if input_name is None else outputs[0]
    kernel = model.get_layer(layer_name).kernel.numpy()
    # Fixed padding: (k - 1) // 2 before and the rest after, whatever the size
    # (TF's "same" padding would put the extra row before on even inputs).
    pad_total = kernel_size - 1
    pad = (pad_total // 2, pad_total - pad_total // 2)
    expected = _numpy_conv(inputs, kernel, 2, pad)
    np.testing.assert_allclose(outputs[-1], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "depth, sk_ratio, block, last_bn, block_input",
    [
        (18, 0.0, "block3_2", "block3_2_bn2", "block3_1_out"),
        (50, 0.0, "block4_3", "block4_3_bn3", "block4_2_out"),
        (50, 0.0625, "block2_2", "block2_2_bn3", "block2_1_out"),
    ],
)
@pytest.mark.parametrize("training", [False, True])
def test_residual_blocks_start_as_identity(depth, sk_ratio, block, last_bn, block_input, training):
    model = resnet(depth, 0.125, (32, 32, 3), sk_ratio=sk_ratio)
    zero_init = [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization) and not np.any(layer.gamma.numpy())
    ]
    num_blocks = sum(_BLOCKS[depth][1])
    assert len(zero_init) == num_blocks
    assert all(name.endswith("_bn3" if depth >= 50 else "_bn2") for name in zero_init)
    assert last_bn in zero_init
    images = _images((4, 32, 32, 3))
    before, after = _outputs(model, [block_input, f"{block}_out"], images, training)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    assert np.abs(before).max() > 0


@pytest.mark.parametrize("synchronized_bn", [False, True])
def test_layer_conventions(synchronized_bn):
    model = resnet(50, 0.0625, (32, 32, 3), sk_ratio=0.0625, synchronized_bn=synchronized_bn)
    batch_norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert batch_norms and convs
    for layer in batch_norms:
        assert "bn" in layer.name
        assert layer.momentum == 0.9 and layer.epsilon == 1e-5
        assert layer.synchronized is synchronized_bn
    for layer in convs:
        assert not layer.use_bias
        initializer = layer.kernel_initializer
        assert isinstance(initializer, keras.initializers.VarianceScaling)
        assert (initializer.scale, initializer.mode, initializer.distribution) == (
            1.0,
            "fan_in",
            "truncated_normal",
        )
    bn_paths = [v.path for l in batch_norms for v in l.weights]
    assert all("bn" in path for path in bn_paths)
    other_paths = [v.path for v in model.weights if v.path not in bn_paths]
    assert all("bn" not in path and "bias" not in path for path in other_paths)


@pytest.mark.parametrize("sk_ratio", [0.0, 0.0625])
def test_projection_shortcuts_and_bottleneck_strides(sk_ratio):
    model = resnet(50, 0.0625, (64, 64, 3), sk_ratio=sk_ratio)
    names = {layer.name for layer in model.layers}
    for stage, num_blocks in zip(range(2, 6), _BLOCKS[50][1]):
        assert f"block{stage}_1_shortcut_conv" in names
        assert all(f"block{stage}_{b}_shortcut_conv" not in names for b in range(2, num_blocks + 1))
        stride = 1 if stage == 2 else 2
        # "v1.5": the stride sits on the 3x3 convolution, not on the first 1x1.
        assert model.get_layer(f"block{stage}_1_conv1").strides == (1, 1)
        three_by_three = f"block{stage}_1_sk_conv" if sk_ratio else f"block{stage}_1_conv2"
        assert model.get_layer(three_by_three).strides == (stride,) * 2
        shortcut_conv = model.get_layer(f"block{stage}_1_shortcut_conv")
        if sk_ratio:
            # ResNet-D: the shortcut average-pools, then projects with stride 1.
            assert shortcut_conv.strides == (1, 1)
            assert model.get_layer(f"block{stage}_1_shortcut_pool").strides == (stride,) * 2
        else:
            assert shortcut_conv.strides == (stride,) * 2
    if sk_ratio:
        assert [model.get_layer(f"stem_conv{i}").strides for i in (1, 2, 3)] == [
            (2, 2),
            (1, 1),
            (1, 1),
        ]


def test_selective_kernel_fuses_and_selects_branches():
    model = resnet(50, 0.125, (32, 32, 3), sk_ratio=0.0625)
    features, pooled, logits, selected = _outputs(
        model,
        ["block3_1_sk_relu", "block3_1_sk_pool", "block3_1_sk_logits_conv", "block3_1_sk_select"],
        _images((3, 32, 32, 3)),
        training=True,
    )
    filters = 16
    assert features.shape[-1] == logits.shape[-1] == 2 * filters
    assert model.get_layer("block3_1_sk_attention_conv").filters == 32
    branch_a, branch_b = features[..., :filters], features[..., filters:]
    np.testing.assert_allclose(
        pooled, (branch_a + branch_b).mean(axis=(1, 2), keepdims=True), rtol=1e-5, atol=1e-6
    )
    logit_a, logit_b = logits[..., :filters], logits[..., filters:]
    weight_a = 1.0 / (1.0 + np.exp(logit_b - logit_a))
    expected = weight_a * branch_a + (1.0 - weight_a) * branch_b
    np.testing.assert_allclose(selected, expected, rtol=1e-5, atol=1e-6)


# Keras 3.15's own saving code converts variables with `np.array(x)`, which numpy 2
# flags; nothing in keras_simclr is involved.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(depth=18, width_multiplier=0.25, input_shape=(32, 32, 3)),
        dict(depth=50, width_multiplier=0.0625, input_shape=(28, 28, 1), synchronized_bn=True),
        dict(depth=50, width_multiplier=0.0625, input_shape=(40, 40, 3), sk_ratio=0.0625),
    ],
)
def test_save_and_load_round_trip(tmp_path, kwargs):
    model = resnet(**kwargs)
    # Non-trivial batch-norm state, so the round trip has something to restore.
    images = _images((4,) + kwargs["input_shape"])
    model(images, training=True)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and not np.any(layer.gamma.numpy()):
            layer.gamma.assign(np.full(layer.gamma.shape, 0.5, "float32"))
    path = tmp_path / "encoder.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.name == model.name
    assert [l.name for l in restored.layers] == [l.name for l in model.layers]
    for layer in restored.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.synchronized is kwargs.get("synchronized_bn", False)
    np.testing.assert_array_equal(
        np.asarray(restored(images, training=False)), np.asarray(model(images, training=False))
    )


def test_encoder_configuration_is_its_constructor_arguments(tmp_path):
    model = resnet_lib.ResNet(
        depth=50, width_multiplier=0.0625, input_shape=(40, 40, 3), sk_ratio=0.0625, name="encoder"
    )
    assert keras.saving.get_registered_name(resnet_lib.ResNet) == "keras_simclr>ResNet"
    assert model.get_config() == dict(
        name="encoder", trainable=True, depth=50, width_multiplier=0.0625,
        input_shape=(40, 40, 3), cifar_stem=False, stem_stride=1, sk_ratio=0.0625, synchronized_bn=False,
        dtype="float32",
    )
    rebuilt = resnet_lib.ResNet.from_config(model.get_config())
    assert [(l.name, type(l)) for l in rebuilt.layers] == [(l.name, type(l)) for l in model.layers]
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in model.weights]
    # The file holds the arguments, not the graph, and loads as a ResNet again.
    model.save(tmp_path / "encoder.keras")
    restored = keras.models.load_model(tmp_path / "encoder.keras")
    assert type(restored) is resnet_lib.ResNet
    assert restored.get_config() == model.get_config()
    images = _images((2, 40, 40, 3))
    np.testing.assert_array_equal(np.asarray(restored(images)), np.asarray(model(images)))


def test_encoder_exports_alone_as_a_saved_model(tmp_path):
    model = resnet(18, 0.125, (16, 16, 3), name="encoder")
    model.export(str(tmp_path / "encoder"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "encoder"))
    images = _images((2, 16, 16, 3))
    np.testing.assert_allclose(
        served.serve(tf.constant(images)), model(images), rtol=1e-5, atol=1e-6
    )


def test_saved_encoder_keeps_its_precision_under_another_global_policy(tmp_path):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = resnet(18, 0.125, (16, 16, 3))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.get_config()["dtype"] == "mixed_bfloat16"
    model.save(tmp_path / "encoder.keras")
    restored = keras.models.load_model(tmp_path / "encoder.keras")
    assert restored(_images((1, 16, 16, 3))).dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in restored.weights)


def test_encoder_saved_as_a_plain_functional_model_still_loads(tmp_path):
    # Files written before the encoder had its class hold a plain functional model
    # (tests/saved/simclr_before_base.keras has one inside a SimCLR model).
    model = resnet(18, 0.125, (16, 16, 3), sk_ratio=0.0625)
    plain = keras.Model(model.inputs[0], model.outputs[0], name=model.name)
    assert keras.saving.serialize_keras_object(plain)["class_name"] == "Functional"
    plain.save(tmp_path / "encoder.keras")
    restored = keras.models.load_model(tmp_path / "encoder.keras")
    assert not isinstance(restored, resnet_lib.ResNet)
    images = _images((2, 16, 16, 3))
    np.testing.assert_array_equal(np.asarray(restored(images)), np.asarray(model(images)))


def test_checkpoint_of_a_plain_functional_encoder_restores_into_a_resnet(tmp_path):
    # A run checkpointed before the encoder had its class resumes with this code.
    source = resnet(18, 0.125, (16, 16, 3), name="encoder")
    source.set_weights([w + 0.5 for w in source.get_weights()])
    plain = keras.Model(source.inputs[0], source.outputs[0], name="encoder")
    path = tf.train.Checkpoint(model=plain).save(str(tmp_path / "ckpt"))
    target = resnet(18, 0.125, (16, 16, 3), name="encoder")
    tf.train.Checkpoint(model=target).restore(path).assert_consumed()
    for restored, saved in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(restored, saved)


def test_resnet50_forward_on_imagenet_sized_images(resnet50):
    h = np.asarray(resnet50(_images((1, 224, 224, 3)), training=False))
    assert h.shape == (1, 2048)
    assert np.all(np.isfinite(h)) and np.all(h >= 0) and h.max() > 0


def test_mixed_bfloat16_policy(bfloat16_policy):
    model = resnet(50, 0.0625, (32, 32, 3), sk_ratio=0.0625)
    h = model(_images((2, 32, 32, 3)), training=True)
    assert h.dtype == "bfloat16"
    assert np.all(np.isfinite(np.asarray(keras.ops.cast(h, "float32"))))
    assert all(v.dtype == "float32" for v in model.weights)


def test_synchronized_bn_makes_replicas_match_one_device(two_cpu_strategy):
    images = _images((8, 16, 16, 3))

    def forward_on_replicas(synchronized_bn):
        with two_cpu_strategy.scope():
            model = resnet(18, 0.125, (16, 16, 3), synchronized_bn=synchronized_bn)
        single = resnet(18, 0.125, (16, 16, 3))
        single.set_weights(model.get_weights())
        shards = two_cpu_strategy.experimental_distribute_values_from_function(
            lambda context: images[4 * context.replica_id_in_sync_group :][:4]
        )
        per_replica = two_cpu_strategy.run(
            tf.function(lambda x: model(x, training=True)), args=(shards,)
        )
        replicas = np.concatenate(
            [np.asarray(y) for y in two_cpu_strategy.experimental_local_results(per_replica)]
        )
        return replicas, np.asarray(single(images, training=True))

    replicas, one_device = forward_on_replicas(synchronized_bn=True)
    np.testing.assert_allclose(replicas, one_device, rtol=1e-4, atol=1e-5)
    # Per-replica statistics give a different function: the check above has teeth.
    replicas, one_device = forward_on_replicas(synchronized_bn=False)
    assert np.abs(replicas - one_device).max() > 1e-3


@pytest.mark.parametrize(
    "build",
    [
        lambda: resnet(18, 0.125, (32, 32, 3)),
        lambda: keras.applications.ResNet50V2(
            weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3)
        ),
    ],
    ids=["keras_simclr_resnet", "keras_applications_resnet50v2"],
)
def test_encoder_contract_images_to_flat_features(build):
    encoder = build()
    assert len(encoder.output_shape) == 2 and encoder.output_shape[-1] is not None
    h = np.asarray(encoder(_images((2, 32, 32, 3)), training=False))
    assert h.shape == (2, encoder.output_shape[-1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=20), "`depth` must be one of"),
        (dict(depth=50.0), "`depth` must be one of"),
        (dict(width_multiplier=0), "`width_multiplier` must be a number > 0"),
        (dict(width_multiplier=-1.0), "`width_multiplier` must be a number > 0"),
        (dict(input_shape=(32, 32)), "`input_shape` must be (height, width, channels)"),
        (dict(input_shape=(32, 32, None)), "`input_shape` must be (height, width, channels)"),
        (dict(input_shape=(0, 32, 3)), "`input_shape` must be (height, width, channels)"),
        (dict(cifar_stem="yes"), "`cifar_stem` must be True, False or None"),
        (dict(sk_ratio=-0.1), "`sk_ratio` must be a number in [0, 1]"),
        (dict(sk_ratio=2), "`sk_ratio` must be a number in [0, 1]"),
        (dict(synchronized_bn="global"), "`synchronized_bn` must be a bool"),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match="Received: ") as error:
        resnet(**kwargs)
    assert message in str(error.value)


def test_selective_kernel_layers_round_trip_config_and_load_under_their_old_names():
    for cls in (resnet_lib.SumBranches, resnet_lib.SelectBranches):
        assert keras.saving.get_registered_name(cls) == f"keras_simclr>{cls.__name__}"
        # Files saved before the names became public refer to "_SumBranches", ...
        old = keras.saving.serialize_keras_object(cls(num_branches=3))
        old["registered_name"] = f"keras_simclr>_{cls.__name__}"
        assert type(keras.saving.deserialize_keras_object(old)) is cls
        layer = cls(num_branches=3, name="branches")
        restored = cls.from_config(layer.get_config())
        assert restored.num_branches == 3 and restored.name == "branches"
        assert keras.saving.get_registered_object(
            keras.saving.get_registered_name(cls)
        ) is cls
