"""The `simclr` command line: flags -> `runner.Config` -> `runner.run`.

Flag names follow the reference implementation's `run.py`. The flags are generated
from `keras_simclr.config.Config`, which holds their defaults, help texts and allowed
values; `simclr --help` lists them by the config's sections.
"""

import glob
import os
import sys

from absl import app
from absl import flags
from absl import logging

# absl shows only the main module's flags for these (none, for a console script) and
# exits with 1; the job's flags, grouped, are what a user asks for.
_HELP_FLAGS = ("-h", "--help", "-help", "-?", "--helpshort", "-helpshort")


# Device files of the accelerators TensorFlow could use here: NVIDIA (also under WSL),
# AMD ROCm, other render devices (pluggable devices) and TPU VMs.
_ACCELERATOR_DEVICES = (
    "/dev/nvidia*", "/dev/dxg", "/dev/kfd", "/dev/dri", "/dev/accel*", "/dev/vfio",
)


def started_as_command_line():
    """Whether this process is `simclr` or `python -m keras_simclr` (not a user script).

    Asked while the package is first imported, before `run()`: `python -m` imports the
    package before its `__main__`, with `sys.argv[0] == "-m"` until then.
    """
    if not sys.argv:
        return False
    if sys.argv[0] == "-m":
        # The interpreter's options end at its first -m, which names the module.
        argv = getattr(sys, "orig_argv", [])
        for i, arg in enumerate(argv[1:], start=1):
            if arg.startswith("-m"):
                module = arg[2:] or (argv[i + 1] if i + 1 < len(argv) else "")
                return module == "keras_simclr"
        return False
    return os.path.splitext(os.path.basename(sys.argv[0]))[0] == "simclr"


def quiet_start():
    """Sets, where unset, the environment that keeps TensorFlow's start-up quiet.

    Effective only before TensorFlow loads. `TF_CPP_MIN_LOG_LEVEL=2` drops its C++
    info and warning lines. Where no accelerator device exists, the CPU (and TPU)
    device types are the only ones registered (`TF_ENABLED_DEVICE_TYPES`), so a build
    with CUDA does not call `cuInit` and log its failure as an error; a machine with a
    GPU is left as it is.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    no_accelerator = not any(glob.glob(pattern) for pattern in _ACCELERATOR_DEVICES)
    if sys.platform == "linux" and no_accelerator:
        os.environ.setdefault("TF_ENABLED_DEVICE_TYPES", "CPU,TPU,TPU_SYSTEM")


def select_backend(argv=None):
    """Sets Keras' backend from `--backend` before the package imports Keras.

    Called while `keras_simclr` is imported as the command line, so that
    `simclr --backend=jax` takes effect (Keras fixes its backend when first
    imported); without the flag the `KERAS_BACKEND` environment variable (else
    TensorFlow) decides. An unknown value, or one that contradicts a Keras
    already imported, ends the program with the message and status 2, as a bad
    flag does.

    Args:
        argv: the command line; `sys.argv` when `None`.
    """
    from keras_simclr import backends

    try:
        backends.select(backends.from_argv(sys.argv if argv is None else argv))
    except ValueError as error:
        print(f"simclr: error: {error}", file=sys.stderr)
        sys.exit(2)


def _define_flags(flag_values=flags.FLAGS):
    """One flag per field of `keras_simclr.config.Config`: its default, help and choices."""
    from keras_simclr import config

    for field in config.fields():
        kind = config.value_type(field)
        choices = field.metadata["choices"]
        args = (field.name, field.default, field.metadata["help"])
        if choices is not None and kind is str:
            flags.DEFINE_enum(field.name, field.default, choices, args[2], flag_values=flag_values)
        elif kind is tuple:
            flags.DEFINE_list(field.name, list(field.default), args[2], flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(*args, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(*args, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(*args, flag_values=flag_values)
        else:
            flags.DEFINE_string(*args, flag_values=flag_values)


def _config_from_flags(flag_values=flags.FLAGS):
    from keras_simclr import config

    values = {}
    for field in config.fields():
        value = flag_values[field.name].value
        if isinstance(value, list):
            value = tuple(value)
        if field.name == "crop_scale":
            try:
                value = tuple(float(v) for v in value)
            except ValueError:
                raise ValueError(
                    "`crop_scale` must be two numbers, e.g. --crop_scale=0.08,1.0. "
                    f"Received: {','.join(value)}"
                ) from None
        values[field.name] = value
    return config.Config(**values)


def _format_default(value):
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _help_text(flag_values=flags.FLAGS):
    """The text of `simclr --help`: the job's flags by group, each with its default."""
    lines = [
        "Pretrains SimCLR, then evaluates the encoder (linear classifier, kNN);",
        "checkpoints, logs, results and pictures go to --model_dir, and rerunning resumes.",
        "",
        "usage: simclr [--flag=value ...]   (or: python -m keras_simclr ...)",
    ]
    from keras_simclr import config

    for section in config.SECTIONS:
        lines += ["", f"{section}:"]
        for field in config.fields(section):
            name = field.name
            flag = flag_values[name]
            switch = f"--[no]{name}" if flag.boolean else f"--{name}"
            text = f"{switch}: {flag.help}"
            lines.append(flags.text_wrap(text, indent="      ", firstline_indent="  "))
            lines.append(f"      (default: {_format_default(flag.default)})")
    lines += ["", "--helpfull lists these among absl's own flags (logging, ...)."]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from keras_simclr import runner

    logging.set_verbosity(logging.WARNING)
    try:
        config = _config_from_flags()
        runner.run(config)
    except (ValueError, FileNotFoundError) as error:
        print(f"simclr: error: {error}", file=sys.stderr)
        sys.exit(2)


def run():
    """Entry point of the `simclr` console script and `python -m keras_simclr`."""
    _define_flags()
    for arg in sys.argv[1:]:
        if arg == "--":
            break
        if arg in _HELP_FLAGS:
            print(_help_text())
            sys.exit(0)
    app.run(main)
