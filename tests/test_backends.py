"""Choosing Keras' backend: --backend, KERAS_BACKEND, and a backend already imported."""

import configparser
import importlib.metadata
import os
import pathlib
import subprocess
import sys

import keras
import pytest
from packaging.requirements import Requirement

from keras_simclr import backends
from keras_simclr import config

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["simclr", "--backend=jax"], "jax"),
        (["simclr", "--mode=train", "--backend", "tensorflow"], "tensorflow"),
        (["simclr", "--mode=train"], None),
        (["simclr", "--", "--backend=jax"], None),
    ],
)
def test_from_argv(argv, expected):
    assert backends.from_argv(argv) == expected


def test_select_checks_the_backend_keras_was_imported_with():
    assert keras.backend.backend() == "tensorflow"
    assert backends.select(None) == "tensorflow"
    assert backends.select("tensorflow") == "tensorflow"
    with pytest.raises(ValueError, match="already imported with the 'tensorflow' backend"):
        backends.select("jax")
    with pytest.raises(ValueError, match="one of tensorflow, jax. Received: backend='torch'"):
        backends.select("torch")


def test_config_offers_the_backends_in_its_runtime_section():
    field = config.field("backend")
    assert field.metadata["section"] == "runtime"
    assert field.metadata["choices"] == ("tensorflow", "jax")
    assert config.Config().backend is None
    assert config.Config(backend="jax").backend == "jax"
    with pytest.raises(ValueError, match="backend"):
        config.Config(backend="torch")


@pytest.mark.e2e
@pytest.mark.parametrize("flag, env_backend", [("--backend=jax", "tensorflow"), (None, "jax")])
def test_command_line_backend_takes_effect_before_keras_is_imported(tmp_path, flag, env_backend):
    # A tf.distribute strategy stops the job before any work on JAX only: the flag
    # (over the environment) or KERAS_BACKEND chose the backend Keras was imported
    # with.
    env = dict(os.environ, KERAS_BACKEND=env_backend, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "keras_simclr", "--mode=train", "--train_steps=1",
               "--strategy=mirrored", f"--model_dir={tmp_path / 'run'}"]
    result = subprocess.run(
        command + ([flag] if flag else []), env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "which Keras' JAX backend does not use" in result.stderr, result.stderr[-2000:]
    assert "--backend=tensorflow" in result.stderr
    assert not (tmp_path / "run").exists()


def test_make_test_runs_the_tensorflow_suite_then_the_jax_suite():
    commands = subprocess.run(
        ["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    tensorflow = commands.index("KERAS_BACKEND=tensorflow")
    jax = commands.index("KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2")
    assert tensorflow < jax
    assert "-m pytest tests/jax" in commands[jax:]


def test_setup_installs_a_jax_in_the_pinned_range():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    pins = [
        Requirement(line)
        for line in cfg["options.extras_require"]["dev"].split("\n")
        if line.strip().startswith("jax")
    ]
    assert [pin.name for pin in pins] == ["jax"] and pins[0].extras == {"cpu"}
    assert pins[0].specifier.contains(importlib.metadata.version("jax"))
