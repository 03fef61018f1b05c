"""Shared test set-up.

Before TensorFlow initialises its devices, the one physical CPU is split into two
logical devices, so that distribution tests run `MirroredStrategy` for real.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_CPUS = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _CPUS[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)
LOGICAL_CPUS = [d.name for d in tf.config.list_logical_devices("CPU")]


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """A `MirroredStrategy` over the two logical CPU devices."""
    assert len(LOGICAL_CPUS) == 2, LOGICAL_CPUS
    return tf.distribute.MirroredStrategy(LOGICAL_CPUS)


@pytest.fixture(scope="session")
def one_cpu_strategy():
    """A `OneDeviceStrategy` on the first logical CPU: the single-device reference."""
    return tf.distribute.OneDeviceStrategy(LOGICAL_CPUS[0])
