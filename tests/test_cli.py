"""The `simclr` command line and `keras_simclr.runner`: the whole job, resume, bad input."""

import ast
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags as absl_flags

import reference_checkpoints
from idx_files import write_real_subset
from keras_simclr import augment
from keras_simclr import cli
from keras_simclr import data
from keras_simclr import evaluation
from keras_simclr import evaluation_job
from keras_simclr import optimizers
from keras_simclr import runner

# The smallest configuration that still runs every piece of the job.
TINY = [
    "--train_batch_size=64",
    "--width_multiplier=0.125",
    "--proj_out_dim=16",
    "--eval_batch_size=256",
    "--mixed_precision=off",
    "--verbose=2",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_real_subset(tmp_path_factory.mktemp("fashion_mnist"), sizes=(512, 256))


def _simclr(*flags, wait=True, timeout=600, env=None, entry_point=("-m", "keras_simclr")):
    command = [sys.executable, *entry_point, *flags]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2") if env is None else env
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def _digest(directory):
    """A fingerprint of every file under `directory` (names, sizes and contents)."""
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(directory).rglob("*")):
        if path.is_file():
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.e2e
def test_main_job_end_to_end(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    result = _simclr(*TINY, f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--train_steps=6")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in (
        "config.json", "model.keras", "encoder.keras", "results.json", "history.csv",
        "curves.png", "embedding.png",
    ):
        assert (model_dir / name).stat().st_size > 0, name
    assert list((model_dir / "checkpoints").glob("ckpt-6.index"))
    assert list((model_dir / "logs").rglob("events.out.tfevents.*"))
    assert json.loads((model_dir / "config.json").read_text())["train_steps"] == 6
    results = {r.protocol: r for r in evaluation.read_results(model_dir / "results.json")}
    assert {"linear (lbfgs)", "knn (k=200, T=0.1)"} <= set(results)
    for record in results.values():
        assert 0.1 < record.accuracy <= 1.0  # better than chance on real data
        assert record.num_test == 256
    assert "Pretrained 6 steps" in result.stdout
    assert "linear (lbfgs)" in result.stdout  # the results table
    encoder = keras.models.load_model(model_dir / "encoder.keras")
    assert encoder.output_shape == (None, 64)


@pytest.mark.e2e
@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    flags = [
        *TINY, f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--train_steps=40",
        "--checkpoint_steps=4", "--mode=train",
    ]
    process = _simclr(*flags, wait=False)
    index = model_dir / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if index.exists() and "ckpt-8" in index.read_text():
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (model_dir / "model.keras").exists()

    result = _simclr(*flags)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    resumed = [line for line in result.stdout.splitlines() if line.startswith("Resuming from step")]
    assert len(resumed) == 1, result.stdout
    step = int(resumed[0].split()[3])
    assert step >= 8 and step % 4 == 0 and resumed[0].endswith("of 40")
    assert f"Pretrained {40 - step} steps" in result.stdout
    restored = keras.models.load_model(model_dir / "model.keras")
    assert int(restored.optimizer.iterations.numpy()) == 40


@pytest.mark.e2e
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dataset=no_such_dataset"], "no_such_dataset"),
        (["--data_dir=/no/such/dir"], "/no/such/dir"),
        (["--image_size=64"], "larger than the 28x28 images"),
        (["--temperature=0"], "temperature"),
        (["--train_batch_size=63", "--cpu_devices=2"], "multiple of the number of replicas"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(data_dir, tmp_path, flags, message):
    model_dir = tmp_path / "run"
    base = [*TINY, f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--train_steps=2"]
    result = _simclr(*base, *flags)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not model_dir.exists()


@pytest.mark.e2e
@pytest.mark.slow
def test_model_dir_of_another_architecture_is_refused_untouched(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    base = [*TINY, f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--train_steps=2", "--mode=train"]
    assert _simclr(*base).returncode == 0
    before = _digest(model_dir)
    result = _simclr(*base, "--width_multiplier=0.25")
    assert result.returncode != 0
    assert "different architecture" in result.stderr and "width_multiplier" in result.stderr
    assert _digest(model_dir) == before


@pytest.mark.distributed
@pytest.mark.e2e
@pytest.mark.slow
def test_pretrain_mirrored_over_two_cpus(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    result = _simclr(
        *TINY, f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--train_steps=3",
        "--train_batch_size=32", "--cpu_devices=2", "--mode=train",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "on 2 replicas (MirroredStrategy)" in result.stdout
    model = keras.models.load_model(model_dir / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == 3


def _image_folder(root, classes=("ant", "bee"), per_class=40, side=16):
    """PNG images in one sub-folder per class (or loose in `root` without classes)."""
    rng = np.random.default_rng(0)
    for i in range(per_class * max(len(classes), 1)):
        folder = root / classes[i % len(classes)] if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    return root


def _no_work(monkeypatch):
    def build_model(*args):
        raise AssertionError("a model was built before the inputs were checked")

    monkeypatch.setattr(runner, "build_model", build_model)
    monkeypatch.setattr(keras.models, "load_model", build_model)


@pytest.mark.e2e
def test_missing_evaluation_split_is_found_before_training(tmp_path):
    folder = _image_folder(tmp_path / "images")  # classes, but no test/ sub-folder
    model_dir = tmp_path / "run"
    result = _simclr(
        *TINY, f"--dataset=folder:{folder}", f"--model_dir={model_dir}", "--train_steps=2",
        "--train_batch_size=16",
    )
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--eval_split='test'" in result.stderr and "Available splits: train" in result.stderr
    assert str(folder / "test") in result.stderr  # the fix
    assert "--mode=train" in result.stderr
    assert "Traceback" not in result.stderr and "Pretraining" not in result.stdout
    assert not model_dir.exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("unlabelled folder", "has no labels"),
        ("unlabelled test split", "--eval_split='test' of"),
        ("empty test split", "holds no examples"),
        ("eval without an encoder", "No trained encoder"),
    ],
)
def test_job_inputs_are_checked_before_any_work(tmp_path, monkeypatch, case, message):
    folder = tmp_path / "images"
    if case == "unlabelled folder":
        _image_folder(folder, classes=())
    else:
        _image_folder(folder / "train")
        if case == "unlabelled test split":
            _image_folder(folder / "test", classes=(), per_class=8)
        elif case == "empty test split":
            (folder / "test").mkdir()
        else:
            _image_folder(folder / "test", per_class=8)
    config = runner.Config(
        dataset=f"folder:{folder}", model_dir=str(tmp_path / "run"), train_steps=2,
        train_batch_size=16, mode="eval" if case == "eval without an encoder" else "train_then_eval",
    )
    _no_work(monkeypatch)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        runner.run(config)
    assert not (tmp_path / "run").exists()


def test_folder_with_train_and_test_splits_passes_the_checks(tmp_path):
    _image_folder(tmp_path / "images" / "train")
    _image_folder(tmp_path / "images" / "test", per_class=8)
    config = runner.Config(dataset=f"folder:{tmp_path / 'images'}", train_batch_size=16)
    evaluation_job.check_evaluation_inputs(config, runner.plan(config), encoder_file=False)


def test_run_shorter_than_its_warmup_warms_up_over_the_whole_run(
    data_dir, tmp_path, capsys, caplog
):
    config = runner.Config(
        data_dir=str(data_dir), model_dir=str(tmp_path / "run"), mode="train",
        train_steps=2, warmup_epochs=1.0, train_batch_size=64, width_multiplier=0.125,
        proj_out_dim=16, mixed_precision="off", verbose=0,
    )
    plan = runner.plan(config)
    assert (plan.requested_warmup_steps, plan.warmup_steps, plan.total_steps) == (8, 2, 2)
    with caplog.at_level("INFO", logger="keras_simclr"):
        model, _ = runner.pretrain(config)
    assert int(model.optimizer.iterations.numpy()) == 2
    schedule = model.optimizer.get_config()["learning_rate"]["config"]
    assert (schedule["warmup_steps"], schedule["total_steps"]) == (2, 2)
    lines = [line for line in capsys.readouterr().out.splitlines() if "Warm-up" in line]
    assert lines == ["Warm-up shortened to the whole run: 2 steps (--warmup_epochs=1.0 asks "
                     "for 8), so the learning rate rises until the last step and never decays"]
    assert [r.getMessage() for r in caplog.records if "Warm-up" in r.getMessage()] == lines


@pytest.mark.e2e
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_flag_by_group_with_its_default(flag):
    result = _simclr(flag, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    groups = re.findall(r"(?m)^(\w+):$", result.stdout)
    assert groups == ["data", "model", "method", "optimizer", "evaluation", "runtime"]
    flags = re.findall(r"(?m)^  --(?:\[no\])?(\w+): ", result.stdout)
    defaults = re.findall(r"(?m)^      \(default: (.*)\)$", result.stdout)
    fields = {field.name: field.default for field in dataclasses.fields(runner.Config)}
    assert sorted(flags) == sorted(fields) and len(defaults) == len(flags)
    for name, default in zip(flags, defaults):
        value = fields[name]
        if value is None:
            assert default == "unset", name
        elif isinstance(value, bool):
            assert default == str(value).lower(), name
        elif isinstance(value, tuple):
            assert default == ",".join(map(str, value)), name
        else:
            assert type(value)(default) == value, name
    assert "--train_batch_size: Global batch size" in result.stdout


# TensorFlow's start-up lines that the command line silences: C++ info lines once its
# logging has started, and, without a GPU, the failed `cuInit` of a build with CUDA.
_SILENCED = (
    "cpu_feature_guard", "This TensorFlow binary is optimized", "XLA service", "device_compiler",
    "cuInit", "cuda_platform",
)


@pytest.mark.e2e
@pytest.mark.parametrize("entry_point", ["python -m keras_simclr", "simclr console script"])
def test_start_up_prints_none_of_the_silenced_lines(data_dir, tmp_path, entry_point):
    if entry_point == "simclr console script":
        script = tmp_path / "simclr"  # what pip writes for the console script
        script.write_text("import sys\nfrom keras_simclr.cli import run\nsys.exit(run())\n")
        entry_point = (str(script),)
    else:
        entry_point = ("-m", "keras_simclr")
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLED_DEVICE_TYPES")
    }
    result = _simclr(
        *TINY, f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}", "--train_steps=1",
        "--mode=train", env=env, entry_point=entry_point,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.startswith("Pretraining on")
    for line in _SILENCED:
        assert line not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "argv, orig_argv, expected",
    [
        (["/usr/local/bin/simclr", "--help"], ["python3", "/usr/local/bin/simclr"], True),
        (["-m"], ["python3", "-m", "keras_simclr", "--train_steps=6"], True),
        (["-m"], ["python3", "-X", "dev", "-mkeras_simclr"], True),
        (["-m"], ["python3", "-m", "pytest"], False),
        (["-m"], ["python3", "-m", "pytest", "-m", "keras_simclr"], False),
        (["-c"], ["python3", "-c", "import keras_simclr", "-m", "keras_simclr"], False),
        (["/work/my_script.py"], ["python3", "/work/my_script.py"], False),
    ],
)
def test_quiet_start_is_for_the_command_line_only(monkeypatch, argv, orig_argv, expected):
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    assert cli.started_as_command_line() is expected


@pytest.mark.parametrize(
    "devices, environment, expected",
    [
        ((), {}, {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLED_DEVICE_TYPES": "CPU,TPU,TPU_SYSTEM"}),
        (("nvidia0", "nvidiactl"), {}, {"TF_CPP_MIN_LOG_LEVEL": "2"}),  # a GPU machine
        (("kfd",), {}, {"TF_CPP_MIN_LOG_LEVEL": "2"}),  # ROCm
        (("accel0",), {}, {"TF_CPP_MIN_LOG_LEVEL": "2"}),  # a TPU VM
        ((), {"TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLED_DEVICE_TYPES": "CPU,GPU"},
         {"TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLED_DEVICE_TYPES": "CPU,GPU"}),  # the user's
    ],
)
def test_quiet_start_leaves_accelerators_and_user_settings_alone(
    tmp_path, monkeypatch, devices, environment, expected
):
    for name in devices:
        (tmp_path / name).touch()
    monkeypatch.setattr(
        cli, "_ACCELERATOR_DEVICES",
        tuple(str(tmp_path) + pattern[len("/dev"):] for pattern in cli._ACCELERATOR_DEVICES),
    )
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "environ", dict(environment))
    cli.quiet_start()
    assert os.environ == expected


# Commands in the documentation: `simclr ...`, `python -m keras_simclr ...` (also `!...`
# in a notebook) and `make run ARGS="..."`, with backslash-continued lines joined.
_ROOT = pathlib.Path(__file__).resolve().parents[1]
_COMMAND = re.compile(
    r"(?:^|(?<=[\s`!]))(?:simclr|python3? -m keras_simclr)(?=[\s`]|$)((?:[ \t]+-[^\s`]+)*)", re.M
)
_MAKE_RUN = re.compile(r"(?:^|(?<=[\s`]))make run(?: ARGS=\"([^\"]*)\")?(?=[\s`]|$)", re.M)
# What the reference's README commands use (google-research/simclr; its run.py scales the
# learning rate linearly by default, and warms up for 10 epochs).
_REFERENCE_COMMANDS = {
    # --train_batch_size=512 --learning_rate=1.0 --weight_decay=1e-4 --temperature=0.5
    "cifar10": dict(
        learning_rate=(1.0, "linear"), weight_decay=1e-4, temperature=0.5, warmup_epochs=10
    ),
    # --train_batch_size=4096 --learning_rate=0.075 --learning_rate_scaling=sqrt --temperature=0.1
    "imagenet2012": dict(learning_rate=(0.075, "sqrt"), temperature=0.1, warmup_epochs=10),
}


def _documented_commands():
    documents = [_ROOT / "README.md", _ROOT / "examples" / "README.md"]
    documents += sorted((_ROOT / "examples" / "notebooks").glob("*.ipynb"))
    commands = []
    for path in documents:
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            texts = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        else:
            texts = [path.read_text()]
        found = {}
        for text in texts:
            for call in _config_calls(text) if path.suffix == ".ipynb" else ():
                found[ast.unparse(call)] = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
            text = re.sub(r"\\\n\s*", " ", text)
            for match in [*_COMMAND.finditer(text), *_MAKE_RUN.finditer(text)]:
                found[" ".join(match.group(0).split())] = shlex.split(match.group(1) or "")
        commands += [pytest.param(args, id=f"{path.name}: {command}") for command, args in found.items()]
    return commands


def _config_calls(code):
    """`runner.Config(...)` calls with literal keyword arguments in a notebook's code cell."""
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("!", "%")))
    return [
        node for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "Config"
        and not node.args
        and all(k.arg and isinstance(k.value, (ast.Constant, ast.Tuple)) for k in node.keywords)
    ]


_DOCUMENTED_COMMANDS = _documented_commands()


def test_the_documentation_shows_the_reference_cifar10_command():
    assert any("--dataset=cifar10" in p.values[0] for p in _DOCUMENTED_COMMANDS)


@pytest.mark.parametrize("args", _DOCUMENTED_COMMANDS)
def test_documented_command_parses_and_follows_the_reference(args):
    if isinstance(args, dict):  # a notebook's runner.Config(...)
        config = runner.Config(**args)
    elif any(arg in cli._HELP_FLAGS or arg == "--helpfull" for arg in args):
        assert len(args) == 1, args
        return
    else:
        flag_values = absl_flags.FlagValues()
        cli._define_flags(flag_values)
        assert flag_values(["simclr", *args]) == ["simclr"]  # every argument is a flag
        config = cli._config_from_flags(flag_values)
    reference = _REFERENCE_COMMANDS.get(config.dataset)
    if reference is None or config.checkpoint:  # official weights are not pretrained here
        return
    base, scaling = reference["learning_rate"]
    learning_rate = optimizers.scaled_learning_rate(
        config.learning_rate, config.train_batch_size, config.learning_rate_scaling
    )
    expected = optimizers.scaled_learning_rate(base, config.train_batch_size, scaling)
    assert learning_rate == pytest.approx(expected), (config.learning_rate, config.learning_rate_scaling)
    for name, value in reference.items():
        if name != "learning_rate":
            assert getattr(config, name) == value, name


def test_tfds_dataset_through_the_job(tmp_path):
    """The real tfds code path (download replaced by tfds' mock data)."""
    config = runner.Config(
        dataset="cifar10", model_dir=str(tmp_path / "run"), train_steps=2,
        train_batch_size=16, width_multiplier=0.125, proj_out_dim=16,
        eval_batch_size=64, mixed_precision="off", verbose=0, eval_protocols=("knn",),
    )
    with tfds.testing.mock_data(num_examples=64):
        results = runner.run(config)
    assert [r.protocol for r in results] == ["knn (k=64, T=0.1)"]
    assert results[0].num_test == 64


def test_folder_of_images_of_different_sizes_through_the_job(tmp_path, monkeypatch):
    """Pretrains on full-resolution crops; evaluates on the centre of each original."""
    sizes = []
    load = data.load

    def recording_load(*args, **kwargs):
        sizes.append(kwargs.get("image_size"))
        return load(*args, **kwargs)

    monkeypatch.setattr(data, "load", recording_load)
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("test", 4)):
        for i in range(count):
            height, width = rng.integers(30, 90, size=2)
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            path = tmp_path / "images" / split / ("ab"[i % 2]) / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tf.io.encode_png(image).numpy())
    config = runner.Config(
        dataset=f"folder:{tmp_path / 'images'}", image_size=40,
        model_dir=str(tmp_path / "run"), train_steps=2, train_batch_size=8,
        width_multiplier=0.125, proj_out_dim=16, eval_batch_size=8,
        mixed_precision="off", verbose=0, eval_protocols=("knn",),
    )
    results = runner.run(config)
    assert [r.num_test for r in results] == [4]
    assert sizes and set(sizes) == {None}  # every image decoded at full resolution
    dataset, preprocess = runner.evaluation_data(config, runner.plan(config), "test")
    assert preprocess is None  # done on each original, before batching
    images = np.concatenate([images for images, _ in dataset])
    originals = [image for image, _ in data.load(config.dataset, "test")]
    center = augment.CenterCropResize(40, 40)  # the central 87.5%, resized once
    for image, original in zip(images, originals):
        np.testing.assert_allclose(image, center(original).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "fly"}, "mode"),
        ({"temperature": -1.0}, "temperature"),
        ({"train_epochs": 0, "train_steps": 0}, "train_epochs"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"image_size": 4}, "image_size"),
        ({"mode": "convert"}, "--mode=convert converts --checkpoint"),
        ({"checkpoint": "r50_1x_sk0"}, "pretraining starts from scratch"),
        ({"mode": "eval", "verify": True}, "--verify checks a conversion"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        runner.Config(**kwargs)


@pytest.mark.parametrize(
    "start, total, per_epoch, expected",
    [
        (0, 10, 5, [(0, 2, 5, 0)]),
        (3, 10, 5, [(0, 1, 2, 3), (1, 2, 5, 5)]),
        (0, 7, 5, [(0, 1, 5, 0), (1, 2, 2, 5)]),
        (6, 7, 5, [(1, 2, 1, 6)]),
        (10, 10, 5, []),
    ],
)
def test_epoch_segments_cover_the_remaining_steps(start, total, per_epoch, expected):
    segments = runner._epoch_segments(start, total, per_epoch)
    assert segments == expected
    assert sum(steps * (end - begin) for begin, end, steps, _ in segments) == total - start


@pytest.mark.e2e
def test_convert_writes_keras_files_that_compute_what_the_reference_computes(tmp_path):
    name = "tf1_r50_1x_sk1"  # SimCLRv2 fine-tuned: the classifier reads head layer 1
    checkpoint = reference_checkpoints.write_release(name, tmp_path / "releases")
    model_dir = tmp_path / "converted"
    result = _simclr(
        "--mode=convert", f"--checkpoint={checkpoint}", f"--model_dir={model_dir}",
        "--image_size=65",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (
        f"Converted {checkpoint}: resnet50_1x_sk (h of 2048), a 3-layer projection head, "
        "a classifier of 10 classes on head layer 1; wrote classifier.keras, encoder.keras, "
        f"model.keras to {model_dir}"
    ) in result.stdout
    _, expected = reference_checkpoints.load_fixture(name)
    images = reference_checkpoints.reference_images()
    model = keras.models.load_model(model_dir / "model.keras")
    encoder = keras.models.load_model(model_dir / "encoder.keras")
    classifier = keras.models.load_model(model_dir / "classifier.keras")
    h = encoder(images).numpy()
    for actual, reference in [
        (h, expected["h"]),
        (model(images).numpy(), expected["h"]),
        (model.projection_head(h).numpy(), expected["z"]),
        (classifier(images).numpy(), expected["logits"]),
    ]:
        np.testing.assert_allclose(actual, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    record = json.loads((model_dir / "conversion.json").read_text())
    assert record["classifier_reads_head_layer"] == 1 and record["projection_head_layers"] == 3
    assert record["encoder_config"]["depth"] == 50 and record["encoder_config"]["sk_ratio"] > 0


def test_convert_checks_its_inputs_before_converting(tmp_path, monkeypatch):
    checkpoint = reference_checkpoints.write_release("tf1_r50_1x_sk0", tmp_path / "releases")

    def no_work(*args, **kwargs):
        raise AssertionError("converted before the inputs were checked")

    monkeypatch.setattr(runner.models, "from_reference_checkpoint", no_work)
    config = runner.Config(
        mode="convert", checkpoint=str(checkpoint), verify=True, model_dir=str(tmp_path / "out")
    )
    with pytest.raises(ValueError, match="not a SavedModel directory"):
        runner.run(config)
    assert not (tmp_path / "out").exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="holds a training run"):
        runner.run(dataclasses.replace(config, verify=False, model_dir=str(run)))
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


def test_eval_and_finetune_start_from_the_official_weights(tmp_path, monkeypatch):
    _image_folder(tmp_path / "images" / "train", per_class=16, side=32)
    _image_folder(tmp_path / "images" / "test", per_class=4, side=32)
    name = "tf2_r50_1x_sk0"  # SimCLRv2 fine-tuned, with its 3-layer head
    checkpoint = reference_checkpoints.write_release(name, tmp_path / "releases")
    # Fine-tuning a ResNet-50 takes a minute here, and test_evaluation tests it;
    # this test checks what the job gives it.
    given = {}

    def fine_tune(encoder, train_data, test_data, label_fraction, *, head, head_layers, **kwargs):
        given.update(encoder=encoder, head=head, head_layers=head_layers)
        result = evaluation.EvaluationResult("images", "fine-tune (50% labels)", 1.0, 1.0, 16, 8)
        return result, keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    monkeypatch.setattr(evaluation, "fine_tune", fine_tune)
    config = runner.Config(
        mode="eval", train_mode="finetune", checkpoint=str(checkpoint),
        dataset=f"folder:{tmp_path / 'images'}", model_dir=str(tmp_path / "run"),
        eval_protocols=("knn",), finetune_label_fraction=0.5, eval_batch_size=16,
        train_batch_size=16, verbose=0,
    )
    results = runner.run(config)
    assert [r.protocol for r in results] == ["knn (k=32, T=0.1)", "fine-tune (50% labels)"]
    assert results[0].num_test == 8
    assert (tmp_path / "run" / "results.json").exists()
    assert (tmp_path / "run" / "finetuned.keras").exists()  # the classifier, beside the record
    # SimCLRv2's fine-tuning: the official encoder, from the head's first layer.
    assert given["head_layers"] == 1
    spec, _ = reference_checkpoints.load_fixture(name)
    values = reference_checkpoints.fixture_values(spec)
    prefix = "model/resnet_model/initial_conv_relu_max_pool/0/conv2d/kernel"
    np.testing.assert_array_equal(
        given["encoder"].get_layer("stem_conv").kernel, values[prefix + reference_checkpoints.TF2_SUFFIX]
    )
    assert given["encoder"].inputs[0].shape[1:] == (224, 224, 3)  # a folder's default size
    prefix = "model/_projection_head/linear_layers/0/dense/kernel"
    np.testing.assert_array_equal(
        given["head"].get_layer("projection_head_dense1").kernel,
        values[prefix + reference_checkpoints.TF2_SUFFIX],
    )


def test_eval_of_the_official_weights_needs_rgb_images(data_dir, tmp_path, monkeypatch):
    _no_work(monkeypatch)
    monkeypatch.setattr(runner.models, "from_reference_checkpoint", runner.build_model)
    config = runner.Config(
        mode="eval", checkpoint=str(tmp_path), data_dir=str(data_dir), model_dir=str(tmp_path / "run")
    )
    with pytest.raises(ValueError, match="take RGB images; 'fashion_mnist' has 1 channel"):
        runner.run(config)
