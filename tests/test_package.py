"""The package as users install it: version, public API, metadata."""

import configparser
import importlib
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import keras
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


# The public names of the modules that became packages, as they were before.
PUBLIC_NAMES = {
    "augment": (
        "CenterCropResize", "ColorJitter", "RandomApply", "RandomColorDrop",
        "RandomGaussianBlur", "RandomResizedCrop", "SimCLRAugment", "crop_and_flip",
        "plot_views",
    ),
    "data": (
        "DatasetInfo", "distributed_pretraining_dataset", "evaluation_dataset", "info",
        "load", "load_fashion_mnist", "pretraining_dataset",
    ),
    "evaluation": (
        "EvaluationResult", "balanced_subset", "extract_features", "fine_tune",
        "format_table", "knn_eval", "linear_eval", "plot_embedding",
        "plot_training_curves", "read_results", "supervised_baseline", "write_results",
    ),
}
REGISTERED = {
    "augment": (
        "CenterCropResize", "ColorJitter", "RandomApply", "RandomColorDrop",
        "RandomGaussianBlur", "RandomResizedCrop", "SimCLRAugment",
    ),
    "models": ("ResNet", "SelectBranches", "SimCLR", "SumBranches"),
}
SUBPACKAGES = ("augment", "data", "evaluation", "models", "models.convert")


@pytest.mark.parametrize("package", sorted(PUBLIC_NAMES))
def test_public_names_stay_where_they_were(package):
    module = getattr(keras_simclr, package)
    for name in PUBLIC_NAMES[package]:
        assert callable(getattr(module, name)), f"keras_simclr.{package}.{name}"


@pytest.mark.parametrize("package", sorted(REGISTERED))
def test_registered_names_are_the_package_and_the_class_name(package):
    # What saved .keras files refer to: a class moving between modules keeps it.
    for name in REGISTERED[package]:
        cls = getattr(getattr(keras_simclr, package), name)
        assert keras.saving.get_registered_name(cls) == f"keras_simclr>{name}"
        assert keras.saving.get_registered_object(f"keras_simclr>{name}") is cls


def test_every_module_of_the_subpackages_imports():
    for package in SUBPACKAGES:
        for path in (ROOT / "keras_simclr" / package.replace(".", "/")).glob("*.py"):
            importlib.import_module(f"keras_simclr.{package}.{path.stem}".removesuffix(".__init__"))


@pytest.mark.slow
@pytest.mark.e2e
def test_wheel_installs_and_imports_outside_the_source_tree(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheels.glob("keras_simclr-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "keras_simclr").rglob("*.py"):
        assert path.relative_to(ROOT).as_posix() in packaged, path
    venv = tmp_path / "venv"
    # The heavy dependencies come from this interpreter; the package only from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    result = subprocess.run(
        [
            str(python),
            "-c",
            "import keras_simclr, keras_simclr.augment.base, keras_simclr.data.folder, "
            "keras_simclr.evaluation.linear, keras_simclr.visualization; "
            "print(keras_simclr.__version__, keras_simclr.__file__)",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        # Without PYTHONPATH, which may name a source tree (a developer's worktree).
        env={
            **{key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
            "TF_CPP_MIN_LOG_LEVEL": "3",
        },
    )
    assert result.returncode == 0, result.stderr[-2000:]
    version, path = result.stdout.split()
    assert version == keras_simclr.__version__
    assert str(venv) in path
    assert (venv / "bin" / "simclr").exists()


def _check_install(pythonpath, *python_flags):
    """`python scripts/check_install.py`, as `setup.sh --if-needed` runs it."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, *python_flags, str(ROOT / "scripts" / "check_install.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_set_up_check_passes_for_this_checkout():
    result = _check_install(ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_set_up_check_refuses_an_install_from_another_checkout(tmp_path):
    # A moved or copied checkout: the interpreter's keras_simclr is another folder's,
    # even though the current folder (this checkout) holds the package too.
    other = tmp_path / "other_checkout"
    (other / "keras_simclr").mkdir(parents=True)
    (other / "keras_simclr" / "__init__.py").write_text("")
    result = _check_install(other)
    assert result.returncode == 1
    assert f"installed from {other / 'keras_simclr'}, not from this checkout" in result.stderr


def test_set_up_check_names_what_is_missing():
    # -S: no site-packages, so neither the package nor its backends are found.
    result = _check_install(None, "-S")
    assert result.returncode == 1
    assert "keras_simclr is not installed" in result.stderr
    result = _check_install(ROOT, "-S")
    assert result.returncode == 1
    assert "not installed: tensorflow, keras, jax" in result.stderr
