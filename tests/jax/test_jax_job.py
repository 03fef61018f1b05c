"""The command line's job on Keras' JAX backend: pretrain data-parallel over the two
CPU devices, checkpoint, resume, evaluate; and what it refuses."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from idx_files import write_real_subset
from keras_simclr import evaluation
from keras_simclr import runner


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_real_subset(tmp_path_factory.mktemp("fashion_mnist"), sizes=(512, 256))


@pytest.fixture(autouse=True)
def no_distribution_left_set():
    yield
    keras.distribution.set_distribution(None)


def _tiny(data_dir, model_dir, **overrides):
    """8 steps of 64 make an epoch of the 512 training images."""
    return runner.Config(
        **{
            "mode": "train", "backend": "jax", "data_dir": str(data_dir),
            "model_dir": str(model_dir), "train_batch_size": 64, "width_multiplier": 0.125,
            "proj_out_dim": 16, "eval_batch_size": 256, "mixed_precision": "off",
            "verbose": 0, **overrides,
        }
    )


def _arrays(path):
    with np.load(path + ".npz") as archive:
        return {key: archive[key] for key in archive.files}


def test_pretrains_on_both_devices_and_resumes_from_its_checkpoint(data_dir, tmp_path, capsys):
    config = _tiny(
        data_dir, tmp_path / "run", train_steps=8, checkpoint_steps=4, checkpoint_epochs=0
    )
    model, history = runner.pretrain(config)
    out = capsys.readouterr().out
    assert "on 2 replicas (DataParallel)" in out
    assert keras.distribution.distribution() is not None
    assert int(model.optimizer.iterations.numpy()) == 8
    assert np.isfinite(history["loss"]).all() and "val_probe_accuracy" in history
    directory = tmp_path / "run" / "checkpoints"
    with open(directory / "checkpoint.json") as f:
        assert json.load(f) == {"checkpoints": ["ckpt-4", "ckpt-8"]}
    for name in ("model.keras", "encoder.keras", "config.json", "architecture.json"):
        assert (tmp_path / "run" / name).exists(), name

    # As if killed after step 4: the index names ckpt-4 the latest. Asked for 4
    # steps, the job restores it and has nothing left to train.
    with open(directory / "checkpoint.json", "w") as f:
        json.dump({"checkpoints": ["ckpt-4"]}, f)
    saved = _arrays(str(directory / "ckpt-4"))
    restored, _ = runner.pretrain(_tiny(data_dir, tmp_path / "run", train_steps=4))
    values = [np.asarray(v.numpy()) for v in restored.variables]
    weights = {k: a for k, a in saved.items() if k.startswith("model/")}
    assert len(weights) == len(values)
    for key, value in zip(sorted(weights), values):
        np.testing.assert_array_equal(value, weights[key], err_msg=key)
    # Asked for 8, it trains steps 5 to 8 with both optimizers restored.
    resumed, _ = runner.pretrain(config)
    assert "Resuming from step 4 of 8" in capsys.readouterr().out
    assert int(resumed.optimizer.iterations.numpy()) == 8
    assert int(resumed.probe_optimizer.iterations.numpy()) == 8


def test_whole_job_from_the_command_line(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable, "-m", "keras_simclr", "--backend=jax",
            f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--train_steps=4",
            "--train_batch_size=64", "--width_multiplier=0.125", "--proj_out_dim=16",
            "--mixed_precision=off", "--eval_batch_size=256", "--verbose=0",
            "--eval_protocols=linear,knn",
        ],
        capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "jax"},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Pretrained 4 steps" in result.stdout
    assert "on 2 replicas (DataParallel)" in result.stdout
    results = {r.protocol: r for r in evaluation.read_results(model_dir / "results.json")}
    assert {"linear (lbfgs)", "knn (k=200, T=0.1)"} <= set(results)
    for record in results.values():
        assert 0.1 < record.accuracy <= 1.0 and record.num_test == 256
    for name in ("model.keras", "encoder.keras", "history.csv", "curves.png", "embedding.png"):
        assert (model_dir / name).stat().st_size > 0, name
    assert (model_dir / "checkpoints" / "ckpt-4.npz").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"strategy": "mirrored"}, "tf.distribute strategy"),
        ({"cpu_devices": 2}, "xla_force_host_platform_device_count"),
    ],
)
def test_tensorflow_only_settings_are_refused_before_any_work(
    data_dir, tmp_path, overrides, message
):
    with pytest.raises(ValueError, match=message):
        runner.pretrain(_tiny(data_dir, tmp_path / "run", train_steps=2, **overrides))
    assert not (tmp_path / "run").exists()


def test_a_model_dir_of_tensorflow_checkpoints_is_not_restarted(data_dir, tmp_path):
    directory = tmp_path / "run" / "checkpoints"
    directory.mkdir(parents=True)
    (directory / "checkpoint").write_text('model_checkpoint_path: "ckpt-4"\n')
    (directory / "ckpt-4.index").write_bytes(b"")
    with pytest.raises(ValueError, match="written on Keras' TensorFlow backend"):
        runner.pretrain(_tiny(data_dir, tmp_path / "run", train_steps=2))
    assert sorted(os.listdir(directory)) == ["checkpoint", "ckpt-4.index"]


def test_killed_run_resumes_from_its_last_whole_checkpoint(data_dir, tmp_path):
    model_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "keras_simclr", "--backend=jax", f"--data_dir={data_dir}",
        f"--model_dir={model_dir}", "--mode=train", "--train_steps=40",
        "--checkpoint_steps=4", "--train_batch_size=64", "--width_multiplier=0.125",
        "--proj_out_dim=16", "--mixed_precision=off", "--verbose=0",
    ]
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = model_dir / "checkpoints" / "checkpoint.json"
    deadline = time.time() + 400
    while time.time() < deadline and process.poll() is None:
        if index.exists() and "ckpt-8" in index.read_text():
            break
        time.sleep(0.1)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (model_dir / "model.keras").exists()

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (resumed,) = [line for line in result.stdout.splitlines() if line.startswith("Resuming")]
    step = int(resumed.split()[3])
    assert step >= 8 and step % 4 == 0 and resumed.endswith("of 40")
    assert f"Pretrained {40 - step} steps" in result.stdout
    restored = keras.models.load_model(model_dir / "model.keras")
    assert int(restored.optimizer.iterations.numpy()) == 40
