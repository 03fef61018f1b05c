"""Set-up of the JAX suite, which runs in its own process.

Keras fixes its backend when it is imported, so these tests run apart from the
TensorFlow suite: `KERAS_BACKEND=jax python -m pytest tests/jax` (`make test` runs
both). XLA splits the CPU into two devices, so that `keras.distribution` runs data
parallelism for real; the flag must be set before JAX is imported.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

# Under the TensorFlow suite (the default backend of tests/conftest.py) the files
# here are not collected: they need Keras' JAX backend.
if os.environ.get("KERAS_BACKEND") != "jax":
    collect_ignore_glob = ["test_*.py"]
