"""Choosing Keras' backend for a keras_simclr process, before Keras is imported.

Keras reads its backend once, when it is first imported (the `KERAS_BACKEND`
environment variable, else `~/.keras/keras.json`, else TensorFlow), and keeps it
for the life of the process. The command line (`simclr --backend=jax`) therefore
sets it while the package is being imported, before any module imports Keras; this
module imports nothing but the standard library so that it can.
"""

import os
import sys

# The backends keras_simclr runs on; `keras_simclr.config` offers them as --backend.
BACKENDS = ("tensorflow", "jax")


def from_argv(argv):
    """The value of `--backend` on a command line, or `None` when it is not given.

    Args:
        argv: the command line, `sys.argv` (the program name first).

    Returns:
        The string after `--backend=` (or the argument after `--backend`), or `None`.
    """
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
        if arg == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def select(name):
    """Makes `name` Keras' backend for this process, or checks that it already is.

    Before Keras is imported this sets `KERAS_BACKEND` (over any value the
    environment had: an explicit choice wins). Once Keras is imported the backend
    is fixed, and a different `name` is an error.

    Args:
        name: one of `BACKENDS`, or `None` to keep what the environment chose.

    Returns:
        The backend Keras uses (or will use) in this process.

    Example:

    ```python
    from keras_simclr import backends
    backends.select("jax")  # before `import keras`
    ```
    """
    if name is not None and name not in BACKENDS:
        raise ValueError(
            f"`backend` must be one of {', '.join(BACKENDS)}. Received: backend={name!r}"
        )
    keras_module = sys.modules.get("keras")
    if keras_module is not None and hasattr(keras_module, "backend"):
        active = keras_module.backend.backend()
        if name is not None and active != name:
            raise ValueError(
                f"The backend {name!r} was asked for, but Keras was already imported "
                f"with the {active!r} backend, and a process keeps the backend it "
                f"imported Keras with. Set KERAS_BACKEND={name} in the environment "
                "before starting Python (or before the first `import keras`)."
            )
        return active
    if name is not None:
        os.environ["KERAS_BACKEND"] = name
    return os.environ.get("KERAS_BACKEND", "tensorflow")
