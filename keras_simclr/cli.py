"""The `simclr` command line: flags -> `train.Config` -> `train.run`.

Flag names follow the reference implementation's `run.py`. Every flag is a field of
`keras_simclr.train.Config`, which holds the defaults; `simclr --help` lists them by
group.
"""

import dataclasses
import glob
import os
import sys
import typing

from absl import app
from absl import flags
from absl import logging

_HELP = {
    "mode": "train, eval (a finished model_dir, or --checkpoint), train_then_eval, or convert (--checkpoint to Keras files in model_dir).",
    "train_mode": "pretrain (SimCLR), or finetune (also fine-tune with a fraction of the labels when evaluating).",
    "dataset": "fashion_mnist (local Debian files, else tfds), any tfds name (cifar10, stl10, imagenet2012, ...), tfds:NAME, or folder:/path/to/images.",
    "data_dir": "Where the data lives: the Fashion-MNIST IDX files, or the tfds data directory.",
    "train_split": "Split to pretrain on (e.g. train, unlabelled for stl10).",
    "eval_split": "Split to evaluate on.",
    "image_size": "Side of the square views; default: the data set's image size (224 for variable sizes).",
    "train_batch_size": "Global batch size (split evenly over the replicas).",
    "train_epochs": "Pretraining epochs (ignored when train_steps > 0).",
    "train_steps": "Pretraining steps; overrides train_epochs when > 0.",
    "eval_batch_size": "Batch size of feature extraction during evaluation.",
    "learning_rate": "Base learning rate, scaled by learning_rate_scaling.",
    "learning_rate_scaling": "linear (lr x batch/256) or sqrt (lr x sqrt(batch)).",
    "warmup_epochs": "Linear warm-up epochs before the cosine decay.",
    "weight_decay": "Weight decay: inside LARS (not on batch-norm parameters and biases); for momentum and adam an L2 term on every weight but batch norm, as the reference.",
    "optimizer": "lars, momentum (SGD Nesterov), or adam.",
    "momentum": "Momentum of LARS / SGD.",
    "temperature": "NT-Xent temperature.",
    "objective": "reference (twice the paper's NT-Xent: the sum of both directions' means, as the reference trains) or paper (the mean over the 2N views).",
    "resnet_depth": "ResNet depth: 18, 34, 50, 101, 152 or 200.",
    "width_multiplier": "ResNet width multiplier (fractions such as 0.25 for small CPUs).",
    "sk_ratio": "Selective-kernel ratio (SimCLRv2 uses 0.0625); 0 disables.",
    "proj_out_dim": "Output dimension of the projection head.",
    "num_proj_layers": "Layers of the projection head (2 for SimCLRv1, 3 for v2).",
    "global_bn": "Synchronise batch-norm statistics across replicas.",
    "color_jitter_strength": "Colour jitter strength s; default from the preset (1.0 ImageNet, 0.5 CIFAR).",
    "crop_scale": "Range low,high of the random crop's area as a fraction of the image (the paper: 0.08,1.0).",
    "use_blur": "Gaussian blur; default from the preset (on for ImageNet-sized images).",
    "augment_in_model": "Augment inside the training step instead of in the tf.data pipeline.",
    "lineareval_while_pretraining": "Train a linear probe on stop_gradient(h) during pretraining.",
    "probe_optimizer": "adam (the probe's own Adam on the warm-up/cosine schedule: a steady progress signal) or shared (the reference: the encoder's optimizer, plain momentum at its learning rate).",
    "probe_learning_rate": "Peak learning rate of the probe's own optimizer (probe_optimizer=adam).",
    "eval_protocols": "Evaluation protocols: linear, knn.",
    "finetune_label_fraction": "Fraction of labels for fine-tuning (train_mode=finetune).",
    "finetune_epochs": "Fine-tuning epochs (train_mode=finetune); default SimCLRv2's: 60 for 1% of the labels or fewer, else 30.",
    "ft_proj_selector": "Projection-head layer fine-tuning starts from (train_mode=finetune): 0 is h, 1 the first layer; default 1 (SimCLRv2) when the head has a layer. With --mode=convert: the layer the checkpoint's classifier reads (default 1 for a finetuned_* release, else 0).",
    "model_dir": "Where checkpoints, the saved models, logs and results go; rerunning resumes.",
    "log_every_steps": "Write history.csv rows and TensorBoard scalars every this many steps (means over those steps).",
    "checkpoint_epochs": "Save a checkpoint every this many epochs (0: off).",
    "checkpoint_steps": "Save a checkpoint every this many steps (0: off).",
    "keep_checkpoint_max": "Checkpoints to keep.",
    "strategy": "auto, one_device, mirrored, multi_worker (TF_CONFIG), or tpu.",
    "cpu_devices": "Split the CPU into this many logical devices and mirror over them (to try distribution without accelerators).",
    "tpu_name": "TPU name or address for strategy=tpu (or auto).",
    "mixed_precision": "auto (bf16 where the hardware has it), off, bfloat16, float16.",
    "jit_compile": "Compile the training step with XLA.",
    "seed": "Random seed of initialisation, shuffling and augmentation.",
    "verbose": "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch; default: 1 on a terminal, else 2.",
    "checkpoint": "Official SimCLR v1/v2 weights: a TF1 checkpoint (prefix or directory) or TF2 SavedModel, local or gs://. --mode=convert writes them as Keras files; --mode=eval evaluates them (and fine-tunes them with --train_mode=finetune) instead of model_dir's encoder.",
    "verify": "With --mode=convert and a SavedModel --checkpoint: run the SavedModel and the converted model on random images and print their largest differences.",
}

# The sections of `--help`, in order; every field of `train.Config` is in one.
_GROUPS = (
    ("job", ("mode", "train_mode", "model_dir", "checkpoint", "verify")),
    ("data", ("dataset", "data_dir", "train_split", "eval_split", "image_size")),
    (
        "model",
        ("resnet_depth", "width_multiplier", "sk_ratio", "proj_out_dim", "num_proj_layers", "global_bn"),
    ),
    ("loss", ("temperature", "objective")),
    ("augmentation", ("color_jitter_strength", "crop_scale", "use_blur", "augment_in_model")),
    (
        "optimisation",
        (
            "train_batch_size", "train_epochs", "train_steps", "optimizer", "learning_rate",
            "learning_rate_scaling", "warmup_epochs", "weight_decay", "momentum",
        ),
    ),
    (
        "evaluation",
        (
            "lineareval_while_pretraining", "probe_optimizer", "probe_learning_rate",
            "eval_protocols", "eval_batch_size",
            "finetune_label_fraction", "finetune_epochs", "ft_proj_selector",
        ),
    ),
    ("checkpoints", ("checkpoint_epochs", "checkpoint_steps", "keep_checkpoint_max")),
    (
        "runtime",
        (
            "strategy", "cpu_devices", "tpu_name", "mixed_precision", "jit_compile", "seed",
            "verbose", "log_every_steps",
        ),
    ),
)

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


def _define_flags(flag_values=flags.FLAGS):
    from keras_simclr import train

    for field in dataclasses.fields(train.Config):
        kind = typing.get_args(field.type) or (field.type,)
        kind = next(k for k in kind if k is not type(None))
        help_text = _HELP[field.name]
        if field.name in ("mode", "train_mode", "optimizer", "mixed_precision", "learning_rate_scaling", "objective", "probe_optimizer"):
            allowed = {
                "mode": train.MODES,
                "train_mode": train.TRAIN_MODES,
                "optimizer": train.OPTIMIZERS,
                "mixed_precision": train.MIXED_PRECISION,
                "learning_rate_scaling": ("linear", "sqrt"),
                "objective": ("reference", "paper"),
                "probe_optimizer": train.PROBE_OPTIMIZERS,
            }[field.name]
            flags.DEFINE_enum(field.name, field.default, allowed, help_text, flag_values=flag_values)
        elif kind is tuple:
            flags.DEFINE_list(field.name, list(field.default), help_text, flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(field.name, field.default, help_text, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(field.name, field.default, help_text, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(field.name, field.default, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(field.name, field.default, help_text, flag_values=flag_values)


def _config_from_flags(flag_values=flags.FLAGS):
    from keras_simclr import train

    values = {}
    for field in dataclasses.fields(train.Config):
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
    return train.Config(**values)


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
    grouped = {name for _, names in _GROUPS for name in names}
    other = tuple(name for name in _HELP if name not in grouped)
    for group, names in _GROUPS + ((("other", other),) if other else ()):
        lines += ["", f"{group}:"]
        for name in names:
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
    from keras_simclr import train

    logging.set_verbosity(logging.WARNING)
    try:
        config = _config_from_flags()
        train.run(config)
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
