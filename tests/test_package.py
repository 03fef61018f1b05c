"""The package as users install it: version, public API, metadata."""

import configparser
import pathlib
import re

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
