"""The package as users install it: version, public API, metadata."""

import configparser
import os
import pathlib
import re
import subprocess
import sys

import pytest
import tensorflow as tf

import keras_simclr

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_version_is_pep440():
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev)?\d*", keras_simclr.__version__)


def test_two_logical_cpus_for_distribution_tests():
    assert len(tf.config.list_logical_devices("CPU")) == 2


def test_no_tensorflow_addons_dependency():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requires = cfg["options"]["install_requires"] + cfg["options.extras_require"]["dev"]
    assert "tensorflow-addons" not in requires
    for path in (ROOT / "keras_simclr").rglob("*.py"):
        assert "tensorflow_addons" not in path.read_text(), path


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("make setup", "make test"):
        assert f"\n{command}\n" in readme, command
        assert f"\n{command}\n" in ci, command
    assert "\nmake run\n" in readme


@pytest.mark.slow
@pytest.mark.e2e
def test_wheel_installs_and_imports_outside_the_source_tree(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheels.glob("keras_simclr-*.whl")
    venv = tmp_path / "venv"
    # The heavy dependencies come from this interpreter; the package only from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    result = subprocess.run(
        [str(python), "-c", "import keras_simclr; print(keras_simclr.__version__, keras_simclr.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    version, path = result.stdout.split()
    assert version == keras_simclr.__version__
    assert str(venv) in path
    assert (venv / "bin" / "simclr").exists()
