"""`keras_simclr.models.convert`: the official SimCLR weights as keras_simclr models.

The fixtures (tests/data/reference/) hold what the reference implementation's own
code computes for checkpoints with its exact variable names and shapes; see
tests/reference_checkpoints.py and scripts/make_reference_fixtures.py.
"""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import reference_checkpoints
from keras_simclr.models.convert import build
from keras_simclr.models.convert import reading
from keras_simclr.models.convert.tf1 import Tf1Names
from keras_simclr.models import from_reference_checkpoint
from keras_simclr.models import verify_saved_model

INPUT_SHAPE = (65, 65, 3)
write_fixture = reference_checkpoints.write_release


def outputs(model, classifier, images):
    h = model.encoder(images, training=False)
    result = {"h": h, "logits": classifier(images, training=False)}
    if model.projection_head.layers[-1].name != "projection_head_identity":
        result["z"] = model.projection_head(h, training=False)
    return {key: np.asarray(value) for key, value in result.items()}


def assert_reference_outputs(actual, expected):
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        scale = np.abs(value).max()
        np.testing.assert_allclose(actual[key], value, rtol=1e-4, atol=1e-4 * scale, err_msg=key)


@pytest.mark.parametrize("name", sorted(reference_checkpoints.RELEASE_FOLDERS))
def test_converted_model_computes_what_the_reference_computes(name, tmp_path):
    spec, expected = reference_checkpoints.load_fixture(name)
    settings = spec["settings"]
    path = write_fixture(name, tmp_path)
    model, classifier = from_reference_checkpoint(path, input_shape=INPUT_SHAPE, classifier=True)

    images = reference_checkpoints.reference_images()
    assert_reference_outputs(outputs(model, classifier, images), expected)
    sk = "_sk" if settings["sk_ratio"] else ""
    assert model.encoder.name == f"resnet{settings['resnet_depth']}_1x{sk}"
    assert model.encoder.get_layer("stem_pool")  # the ImageNet stem
    dense = [layer for layer in model.projection_head.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == settings["num_proj_layers"]
    # A classifier on h is the model's probe; on head layer 1 it is not.
    assert (model.probe is not None) == (settings["ft_proj_selector"] == 0)


def test_savedmodel_keys_are_resolved_through_the_object_graph(tmp_path):
    # A SavedModel's keys are `resnet_model/variables/N`, numbered in another order
    # than the layers: only the object graph says which layer each one belongs to.
    name = "tf2_r50_1x_sk1"
    _, expected = reference_checkpoints.load_fixture(name)
    path = write_fixture(name, tmp_path, saved_model_keys=True)
    keys = tf.train.load_checkpoint(str(path)).get_variable_to_shape_map()
    assert "model/resnet_model/variables/0/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert not any("block_groups" in key for key in keys)
    model, classifier = from_reference_checkpoint(path, input_shape=INPUT_SHAPE, classifier=True)
    images = reference_checkpoints.reference_images()
    assert_reference_outputs(outputs(model, classifier, images), expected)


@pytest.mark.parametrize(
    "name, first, second",
    [
        # Two batch norms of the same shape, numbered 5 and 6 (TF1 numbering).
        ("tf1_r50_1x_sk0", "base_model/batch_normalization_5", "base_model/batch_normalization_6"),
        # Blocks 10 and 2 of stage 3: string order would swap them (TF2 paths).
        (
            "tf2_r101_1x_sk0",
            "model/resnet_model/block_groups/2/layers/10/conv_relu_dropblock_layers/3/conv2d",
            "model/resnet_model/block_groups/2/layers/2/conv_relu_dropblock_layers/3/conv2d",
        ),
    ],
)
def test_the_fixtures_detect_a_misplaced_layer(name, first, second, tmp_path):
    spec, expected = reference_checkpoints.load_fixture(name)
    values = reference_checkpoints.fixture_values(spec)
    swapped = dict(values)
    for key in values:
        for a, b in ((first, second), (second, first)):
            if key.startswith(a + "/"):
                swapped[key] = values[b + key[len(a):]]
    assert any(swapped[key] is not values[key] for key in values)
    model, classifier = from_reference_checkpoint(
        write_fixture(name, tmp_path, values=swapped), input_shape=INPUT_SHAPE, classifier=True
    )
    actual = outputs(model, classifier, reference_checkpoints.reference_images())
    with pytest.raises(AssertionError):
        assert_reference_outputs(actual, expected)


def test_ft_proj_selector_chooses_what_the_classifier_reads(tmp_path):
    name = "tf1_r50_1x_sk1"  # fine-tuned: the classifier reads head layer 1
    spec, expected = reference_checkpoints.load_fixture(name)
    path = write_fixture(name, tmp_path)
    images = reference_checkpoints.reference_images()
    model, classifier = from_reference_checkpoint(path, input_shape=INPUT_SHAPE, classifier=True)
    assert model.probe is None
    assert_reference_outputs(outputs(model, classifier, images), expected)
    # Read as a classifier on h (what a pretrained release holds), the logits change.
    model, classifier = from_reference_checkpoint(
        path, input_shape=INPUT_SHAPE, ft_proj_selector=0, classifier=True
    )
    assert model.probe is not None
    logits = classifier(images).numpy()
    np.testing.assert_allclose(logits, model.probe(model.encoder(images)).numpy(), rtol=1e-6)
    assert np.abs(logits - expected["logits"]).max() > 1e-2
    with pytest.raises(ValueError, match="ft_proj_selector.*0 \\(h\\) to 3"):
        from_reference_checkpoint(path, ft_proj_selector=4)


def test_ema_reads_the_moving_average_copy(tmp_path):
    name = "tf1_r50_1x_sk0"
    spec, _ = reference_checkpoints.load_fixture(name)
    trained = reference_checkpoints.fixture_values(spec)
    averages = reference_checkpoints.fixture_values(spec, salt=1)
    path = write_fixture(name, tmp_path, extra={f"ema_model/{k}": v for k, v in averages.items()})
    for ema, values in ((False, trained), (True, averages)):
        encoder = from_reference_checkpoint(path, ema=ema).encoder
        # The first and the last (the 53rd) convolution and batch norm of a ResNet-50.
        for layer, weight, key in [
            ("stem_conv", "kernel", "base_model/conv2d/kernel"),
            ("stem_bn", "moving_variance", "base_model/batch_normalization/moving_variance"),
            ("block5_3_conv3", "kernel", "base_model/conv2d_52/kernel"),
            ("block5_3_bn3", "gamma", "base_model/batch_normalization_52/gamma"),
        ]:
            np.testing.assert_array_equal(getattr(encoder.get_layer(layer), weight), values[key])


def _tf1_shapes(depth, width, selective_kernels, classes=1000):
    """The variable shapes of a released TF1 checkpoint, in the reference's creation
    order (no tensors: the larger releases would take gigabytes)."""
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
    convs, bns = [], []

    def conv(size, cin, cout):
        convs.append([size, size, cin, cout])

    def bn(channels):
        bns.append(channels)

    stem = 64 * width
    if selective_kernels:
        for cin, cout in [(3, stem // 2), (stem // 2, stem // 2), (stem // 2, stem)]:
            conv(3, cin, cout), bn(cout)
    else:
        conv(7, 3, stem), bn(stem)
    channels = stem
    for stage, count in enumerate(blocks):
        filters = 64 * width * 2**stage
        for block in range(count):
            if block == 0:
                conv(1, channels, 4 * filters), bn(4 * filters)
            conv(1, channels, filters), bn(filters)
            if selective_kernels:
                attention = max(int(filters * 0.0625), 32)
                conv(3, filters, 2 * filters), bn(2 * filters)
                conv(1, filters, attention), bn(attention)
                conv(1, attention, 2 * filters)
            else:
                conv(3, filters, filters), bn(filters)
            conv(1, filters, 4 * filters), bn(4 * filters)
            channels = 4 * filters
    shapes = {}
    for i, shape in enumerate(convs):
        shapes[f"base_model/conv2d{f'_{i}' if i else ''}/kernel"] = shape
    for i, size in enumerate(bns):
        for weight in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"base_model/batch_normalization{f'_{i}' if i else ''}/{weight}"] = [size]
    for layer, cout in enumerate([channels, channels, 128]):
        cin = channels
        shapes[f"head_contrastive/nl_{layer}/dense/kernel"] = [cin, cout]
        for weight in ("gamma", "beta", "moving_mean", "moving_variance"):
            if not (layer == 2 and weight == "beta"):
                shapes[f"head_contrastive/nl_{layer}/batch_normalization/{weight}"] = [cout]
    shapes["head_supervised/linear_layer/dense/kernel"] = [channels, classes]
    shapes["head_supervised/linear_layer/dense/bias"] = [classes]
    shapes["global_step"] = []
    return shapes, len(convs)


@pytest.mark.parametrize(
    "depth, width, selective_kernels",
    [(152, 3, True), (152, 2, True), (101, 2, False), (50, 4, False)],
)
def test_the_architecture_is_read_from_the_shapes(depth, width, selective_kernels):
    shapes, num_convs = _tf1_shapes(depth, width, selective_kernels)
    layout = Tf1Names(shapes, "release", ema=False).layout(reader=None)
    assert (layout.depth, layout.width_multiplier) == (depth, width)
    assert layout.sk_ratio == (0.0625 if selective_kernels else 0.0)
    assert layout.head_dims == (2048 * width, 2048 * width, 128)
    assert layout.num_classes == 1000
    # Numbered in creation order: the last convolution ends the last block, the
    # second one is the first block's shortcut (created before its branch).
    def conv(layer):
        return layout.keys["encoder", layer, "kernel"]

    assert conv("block5_3_conv3") == f"base_model/conv2d_{num_convs - 1}/kernel"
    first = 3 if selective_kernels else 1
    assert conv("block2_1_shortcut_conv") == f"base_model/conv2d_{first}/kernel"
    assert conv("block2_1_conv1") == f"base_model/conv2d_{first + 1}/kernel"


def test_a_tf1_directory_or_a_savedmodel_folder_is_found(tmp_path):
    tf1 = write_fixture("tf1_r50_1x_sk0", tmp_path)
    assert reading.locate(str(tf1)) == str(tf1 / "model.ckpt-250228")
    (tf1 / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-250228"\n')
    assert reading.locate(str(tf1) + "/") == str(tf1 / "model.ckpt-250228")
    prefix = write_fixture("tf2_r50_1x_sk1", tmp_path)  # .../saved_model/variables/variables
    saved_model = prefix.parent.parent
    (saved_model / "saved_model.pb").write_bytes(b"")
    for path in (saved_model, saved_model.parent, prefix.parent, prefix):
        assert reading.locate(str(path)) == str(prefix), path


def _not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    return tmp_path


def _vit(tmp_path):
    tensors = {
        "Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel": np.zeros((8, 32), np.float32),
        "embedding/kernel": np.zeros((16, 16, 3, 8), np.float32),
    }
    return reference_checkpoints.write_tf1_checkpoint(tmp_path / "vit.ckpt", tensors)


def _keras_model(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    return tf.train.Checkpoint(model=model).write(str(tmp_path / "keras"))


def _truncated_data(tmp_path):
    path = write_fixture("tf1_r50_1x_sk0", tmp_path)
    (data,) = path.glob("*.data-*")
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 2)
    return path


def _truncated_index(tmp_path):
    path = write_fixture("tf1_r50_1x_sk0", tmp_path)
    (index,) = path.glob("*.index")
    index.write_bytes(index.read_bytes()[:100])
    return path


def _missing_layer(tmp_path):
    return write_fixture("tf1_r50_1x_sk0", tmp_path, drop=["base_model/conv2d_20/kernel"])


def _extra_layer(tmp_path):
    return write_fixture(
        "tf2_r50_1x_sk0", tmp_path,
        extra={
            "model/resnet_model/block_groups/3/layers/2/se_layer/se_reduce/kernel"
            + reference_checkpoints.TF2_SUFFIX: np.zeros((1, 1, 2048, 128), np.float32)
        },
    )


def _cifar_stem(tmp_path):
    return write_fixture(
        "tf1_r50_1x_sk0", tmp_path,
        extra={"base_model/conv2d/kernel": np.zeros((3, 3, 3, 64), np.float32)},
    )


def _several_checkpoints(tmp_path):
    path = write_fixture("tf1_r50_1x_sk0", tmp_path)
    for name in path.iterdir():
        shutil.copy(name, path / name.name.replace("250228", "100000"))
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (_not_a_checkpoint, "is neither a TF1 checkpoint .* nor a TF2 SavedModel"),
        (_vit, "is not a SimCLR checkpoint: .*Transformer/encoderblock_0"),
        (_keras_model, "is not a SimCLR checkpoint"),
        (_truncated_data, "is incomplete: .*fewer than the .* Download model.ckpt-250228.data"),
        (_truncated_index, "Cannot read the checkpoint index .*truncated or corrupt"),
        (_missing_layer, "lacks base_model/conv2d_20/kernel"),
        (_extra_layer, "does not have: .*se_layer/se_reduce/kernel"),
        (_cifar_stem, "3x3 convolution .* not the ImageNet stem"),
        (_several_checkpoints, "several checkpoints .*model.ckpt-100000, model.ckpt-250228"),
    ],
)
def test_bad_input_fails_clearly_before_any_work(make, message, tmp_path, monkeypatch):
    path = make(tmp_path)

    def no_work(*args, **kwargs):
        raise AssertionError("a model was built before the checkpoint was checked")

    monkeypatch.setattr(build, "resnet", no_work)
    with pytest.raises(ValueError, match=message):
        from_reference_checkpoint(path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (224, 224, 1)}, "RGB"),
        ({"ema": True}, "TF2 checkpoint; `ema=True`"),
        ({"classifier": "yes"}, "`classifier` must be a bool"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, message, tmp_path):
    path = write_fixture("tf2_r50_1x_sk1", tmp_path)
    with pytest.raises(ValueError, match=message):
        from_reference_checkpoint(path, **kwargs)


def test_ema_of_a_checkpoint_without_averages_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no moving-average copy"):
        from_reference_checkpoint(write_fixture("tf1_r50_1x_sk0", tmp_path), ema=True)


def _saved_model(directory, name, perturb):
    """A SavedModel called like the released ones, holding fixture `name`'s variables.

    Its function returns the reference's outputs on `reference_images()` (whatever
    the input; the reference's code is not available to the tests), with `perturb`
    added to h.
    """
    spec, expected = reference_checkpoints.load_fixture(name)
    module = tf.Module()
    reference_checkpoints.attach_tf2_variables(
        module, reference_checkpoints.fixture_values(spec), saved_model_keys=True
    )

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([], tf.bool)]
    )
    def call(images, trainable):
        return {
            "final_avg_pool": tf.constant(expected["h"] + perturb),
            "proj_head_output": tf.constant(expected["z"]),
            "logits_sup": tf.constant(expected["logits"]),
            "block_group4": tf.zeros([1]),
        }

    module.__call__ = call
    tf.saved_model.save(module, str(directory / "saved_model"))
    return directory / "saved_model"


def test_verify_measures_the_difference_from_the_savedmodel(tmp_path):
    saved_model = _saved_model(tmp_path, "tf2_r50_1x_sk0", perturb=1e-2)
    # A fine-tuned release (its path does not say so here): the classifier reads
    # head layer 1.
    model, classifier = from_reference_checkpoint(
        saved_model, input_shape=INPUT_SHAPE, ft_proj_selector=1, classifier=True
    )
    images = reference_checkpoints.reference_images()
    differences = verify_saved_model(saved_model, model, classifier, images=images)
    assert sorted(differences) == ["h", "logits", "z"]
    assert differences["h"]["max_abs_difference"] == pytest.approx(1e-2, abs=1e-5)
    assert differences["h"]["relative_difference"] > 1e-3
    assert differences["z"]["max_abs_difference"] < 1e-5
    assert differences["logits"]["max_abs_difference"] < 1e-5
    # By default both run on random images (here the SavedModel ignores them).
    differences = verify_saved_model(saved_model, model, classifier, num_images=2, seed=1)
    assert differences["h"]["relative_difference"] > 1e-2


def test_verify_needs_a_savedmodel(tmp_path):
    path = write_fixture("tf1_r50_1x_sk0", tmp_path)
    with pytest.raises(ValueError, match="not a SavedModel directory"):
        verify_saved_model(path, model=None)
