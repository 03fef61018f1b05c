"""The job's configuration, defined once: sections, defaults, help and allowed values.

`Config` is a flat frozen dataclass (`Config(train_batch_size=64)`, `config.dataset`):
its fields are declared section by section, each with its help text and, where the
values are a closed set, the allowed ones in the field's metadata. The command line
(`keras_simclr.cli`) generates its flags and the groups of `--help` from it, and the
benchmarks reuse its field definitions (`reuse`) instead of copying them. Names follow
the reference implementation's `run.py` flags.
"""

import dataclasses
import json
import typing

from keras_simclr import backends as _backends
from keras_simclr import checks
from keras_simclr.models import simclr as _simclr

# The sections, in the order of `simclr --help`.
SECTIONS = ("data", "model", "method", "optimizer", "evaluation", "runtime")

MODES = ("train", "eval", "train_then_eval", "convert")
TRAIN_MODES = ("pretrain", "finetune")
METHODS = ("simclr",)
ENCODERS = ("resnet",)
OPTIMIZERS = ("lars", "momentum", "adam")
LEARNING_RATE_SCALINGS = ("linear", "sqrt")
PROBE_OPTIMIZERS = ("adam", "shared")
PROBE_INPUTS = ("images", "views")
MIXED_PRECISION = ("auto", "off", "bfloat16", "float16")
EVAL_PROTOCOLS = ("linear", "knn")
OBJECTIVES = tuple(_simclr.OBJECTIVES)
BACKENDS = _backends.BACKENDS


def option(default, help, *, section=None, choices=None, at_least=None):
    """A configuration field: its default, help text, section and checks.

    Args:
        default: the default value (a tuple for list-valued fields).
        help: the help text of its flag.
        section: the `--help` group it belongs to.
        choices: the allowed values (of each element, for a tuple field).
        at_least: the smallest allowed value.
    """
    return dataclasses.field(
        default=default,
        metadata=dict(help=help, section=section, choices=choices, at_least=at_least),
    )


def _section(name):
    return lambda default, help, **checks: option(default, help, section=name, **checks)


_data = _section("data")
_model = _section("model")
# The method: its objective and the views it compares (SimCLR's augmentations).
_method = _section("method")
_optimizer = _section("optimizer")
_evaluation = _section("evaluation")
# What to run, where to write it, checkpoints, devices and precision.
_runtime = _section("runtime")


@dataclasses.dataclass(frozen=True)
class Config:
    """Configuration of a SimCLR run; names follow the reference `run.py` flags.

    The defaults are the main job: Fashion-MNIST from local files, a quarter-width
    ResNet-18, a few minutes on 2 CPU cores, then a linear evaluation. Its
    optimisation settings come from the quality study (docs/quality_study.md): for
    3 epochs at batch 256, SGD with Nesterov momentum, learning rate 0.6, the
    reference's L2 weight decay 1e-4 and a 0.3-epoch warm-up beat LARS at its best
    learning rate by 1.1 points of linear evaluation and 1.7 of kNN on a validation
    split. LARS (`optimizer="lars"`) remains the paper's choice for large batches.
    """

    # job
    mode: str = _runtime(
        "train_then_eval",
        "train, eval (a finished model_dir, or --checkpoint), train_then_eval, or convert (--checkpoint to Keras files in model_dir).",
        choices=MODES,
    )
    train_mode: str = _runtime(
        "pretrain",
        "pretrain (SimCLR), or finetune (also fine-tune with a fraction of the labels when evaluating).",
        choices=TRAIN_MODES,
    )
    model_dir: str = _runtime(
        "runs/fashion_mnist",
        "Where checkpoints, the saved models, logs and results go; rerunning resumes.",
    )
    checkpoint: str | None = _runtime(
        None,
        "Official SimCLR v1/v2 weights: a TF1 checkpoint (prefix or directory) or TF2 SavedModel, local or gs://. --mode=convert writes them as Keras files; --mode=eval evaluates them (and fine-tunes them with --train_mode=finetune) instead of model_dir's encoder.",
    )
    verify: bool = _runtime(
        False,
        "With --mode=convert and a SavedModel --checkpoint: run the SavedModel and the converted model on random images and print their largest differences.",
    )
    # data
    dataset: str = _data(
        "fashion_mnist",
        "fashion_mnist (local Debian files, else tfds), any tfds name (cifar10, stl10, imagenet2012, ...), tfds:NAME, or folder:/path/to/images.",
    )
    data_dir: str | None = _data(
        None, "Where the data lives: the Fashion-MNIST IDX files, or the tfds data directory."
    )
    train_split: str = _data("train", "Split to pretrain on (e.g. train, unlabelled for stl10).")
    eval_split: str = _data("test", "Split to evaluate on.")
    image_size: int | None = _data(
        None,
        "Side of the square views; default: the data set's image size (224 for variable sizes).",
    )
    # model
    encoder: str = _model("resnet", "The encoder: resnet.", choices=ENCODERS)
    resnet_depth: int = _model(18, "ResNet depth: 18, 34, 50, 101, 152 or 200.")
    width_multiplier: float = _model(
        0.25, "ResNet width multiplier (fractions such as 0.25 for small CPUs)."
    )
    stem_stride: int = _model(
        1,
        "Stride of the CIFAR stem's convolution (images of 32 pixels or less): 1 (the paper's) or 2 (every later layer at half the resolution: about 3x the throughput on CPUs).",
        choices=(1, 2),
    )
    sk_ratio: float = _model(0.0, "Selective-kernel ratio (SimCLRv2 uses 0.0625); 0 disables.")
    proj_out_dim: int = _model(128, "Output dimension of the projection head.")
    proj_hidden_dim: int | None = _model(
        None,
        "Width of the projection head's hidden layers; default: the width of h (the paper's).",
        at_least=1,
    )
    num_proj_layers: int = _model(
        2, "Layers of the projection head (2 for SimCLRv1, 3 for v2)."
    )
    global_bn: bool = _model(True, "Synchronise batch-norm statistics across replicas.")
    # loss
    method: str = _method("simclr", "The self-supervised method: simclr.", choices=METHODS)
    temperature: float = _method(0.2, "NT-Xent temperature.")
    objective: str = _method(
        "reference",
        "reference (twice the paper's NT-Xent: the sum of both directions' means, as the reference trains) or paper (the mean over the 2N views).",
        choices=OBJECTIVES,
    )
    # augmentation
    color_jitter_strength: float | None = _method(
        None,
        "Colour jitter strength s; default from the preset (1.0 ImageNet, 0.5 CIFAR).",
    )
    crop_scale: tuple = _method(
        (0.08, 1.0),
        "Range low,high of the random crop's area as a fraction of the image (the paper: 0.08,1.0).",
    )
    use_blur: bool | None = _method(
        None, "Gaussian blur; default from the preset (on for ImageNet-sized images)."
    )
    augment_in_model: bool = _method(
        False, "Augment inside the training step instead of in the tf.data pipeline."
    )
    # optimisation
    train_batch_size: int = _optimizer(
        256, "Global batch size (split evenly over the replicas).", at_least=1
    )
    train_epochs: int = _optimizer(3, "Pretraining epochs (ignored when train_steps > 0).")
    train_steps: int = _optimizer(0, "Pretraining steps; overrides train_epochs when > 0.")
    optimizer: str = _optimizer(
        "momentum", "lars, momentum (SGD Nesterov), or adam.", choices=OPTIMIZERS
    )
    learning_rate: float = _optimizer(
        0.6, "Base learning rate, scaled by learning_rate_scaling."
    )
    learning_rate_scaling: str = _optimizer(
        "linear",
        "linear (lr x batch/256) or sqrt (lr x sqrt(batch)).",
        choices=LEARNING_RATE_SCALINGS,
    )
    warmup_epochs: float = _optimizer(0.3, "Linear warm-up epochs before the cosine decay.")
    weight_decay: float = _optimizer(
        1e-4,
        "Weight decay: inside LARS (not on batch-norm parameters and biases); for momentum and adam an L2 term on every weight but batch norm, as the reference.",
    )
    momentum: float = _optimizer(0.9, "Momentum of LARS / SGD.")
    # evaluation
    lineareval_while_pretraining: bool = _evaluation(
        True,
        "Train a linear probe on stop_gradient(h) during pretraining, scored at "
        "each epoch's end on the clean eval_split images (val_probe_accuracy).",
    )
    probe_optimizer: str = _evaluation(
        "adam",
        "adam (the probe's own Adam on the warm-up/cosine schedule: a steady progress signal) or shared (the reference: the encoder's optimizer, plain momentum at its learning rate).",
        choices=PROBE_OPTIMIZERS,
    )
    probe_learning_rate: float = _evaluation(
        0.1, "Peak learning rate of the probe's own optimizer (probe_optimizer=adam)."
    )
    probe_average: float = _evaluation(
        0.98,
        "Momentum of the moving average of the probe's weights that scores it (val_probe_*); its own optimizer then stays at probe_learning_rate after the warm-up instead of decaying. 0: no average, the cosine decay.",
    )
    probe_on: str = _evaluation(
        "images",
        "What the online probe trains on: images (the clean training images, one more forward pass in inference mode; ends closer to the linear evaluation) or views (the reference: both augmented views).",
        choices=PROBE_INPUTS,
    )
    eval_protocols: tuple = _evaluation(
        ("linear", "knn"), "Evaluation protocols: linear, knn.", choices=EVAL_PROTOCOLS
    )
    eval_batch_size: int = _evaluation(
        512, "Batch size of feature extraction during evaluation.", at_least=1
    )
    finetune_label_fraction: float = _evaluation(
        0.1, "Fraction of labels for fine-tuning (train_mode=finetune)."
    )
    finetune_epochs: int | None = _evaluation(
        None,
        "Fine-tuning epochs (train_mode=finetune); default SimCLRv2's: 60 for 1% of the labels or fewer, else 30.",
    )
    ft_proj_selector: int | None = _evaluation(
        None,
        "Projection-head layer fine-tuning starts from (train_mode=finetune): 0 is h, 1 the first layer; default 1 (SimCLRv2) when the head has a layer. With --mode=convert: the layer the checkpoint's classifier reads (default 1 for a finetuned_* release, else 0).",
    )
    # checkpoints
    checkpoint_epochs: int = _runtime(
        1, "Save a checkpoint every this many epochs (0: off)."
    )
    checkpoint_steps: int = _runtime(0, "Save a checkpoint every this many steps (0: off).")
    keep_checkpoint_max: int = _runtime(3, "Checkpoints to keep.", at_least=1)
    # runtime
    backend: str | None = _runtime(
        None,
        "Keras backend: tensorflow or jax (default: the KERAS_BACKEND environment "
        "variable, else tensorflow). The flag takes effect before Keras is imported. "
        "On jax, data parallelism (keras.distribution) spans all local devices and "
        "--strategy, --cpu_devices and --tpu_name do not apply.",
        choices=BACKENDS,
    )
    strategy: str = _runtime(
        "auto", "auto, one_device, mirrored, multi_worker (TF_CONFIG), or tpu."
    )
    cpu_devices: int = _runtime(
        0,
        "Split the CPU into this many logical devices and mirror over them (to try distribution without accelerators).",
        at_least=0,
    )
    tpu_name: str | None = _runtime(None, "TPU name or address for strategy=tpu (or auto).")
    mixed_precision: str = _runtime(
        "auto",
        "auto (bf16 where the hardware has it), off, bfloat16, float16.",
        choices=MIXED_PRECISION,
    )
    jit_compile: bool = _runtime(
        False, "Compile the training step with XLA (on JAX it always is)."
    )
    seed: int = _runtime(0, "Random seed of initialisation, shuffling and augmentation.")
    verbose: int | None = _runtime(
        None,
        "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch; default: 1 on a terminal, else 2.",
    )
    log_every_steps: int = _runtime(
        25,
        "Write history.csv rows and TensorBoard scalars every this many steps (means over those steps).",
        at_least=1,
    )

    def __post_init__(self):
        check_fields(self)
        if self.train_epochs < 1 and self.train_steps < 1:
            raise ValueError(
                "Set `train_epochs` or `train_steps` to a positive number. Received: "
                f"train_epochs={self.train_epochs}, train_steps={self.train_steps}"
            )
        if (
            len(self.crop_scale) != 2
            or not 0 < float(self.crop_scale[0]) <= float(self.crop_scale[1]) <= 1
        ):
            raise ValueError(
                "`crop_scale` must be two area fractions 0 < low <= high <= 1, e.g. "
                f"--crop_scale=0.08,1.0. Received: crop_scale={self.crop_scale!r}"
            )
        for name in ("temperature", "probe_learning_rate", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0. Received: {name}={getattr(self, name)}")
        if not 0 <= self.probe_average < 1:
            raise ValueError(
                "`probe_average` must be a momentum in [0, 1), e.g. --probe_average=0.98 "
                f"(0: no average). Received: probe_average={self.probe_average}"
            )
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(
                f"`image_size` must be >= 8 pixels. Received: image_size={self.image_size}"
            )
        if self.finetune_epochs is not None and self.finetune_epochs < 1:
            raise ValueError(
                "`finetune_epochs` must be >= 1, or unset for SimCLRv2's 60 (1% of the "
                f"labels or fewer) or 30. Received: finetune_epochs={self.finetune_epochs}"
            )
        if self.ft_proj_selector is not None and not (
            0 <= self.ft_proj_selector <= self.num_proj_layers
        ):
            raise ValueError(
                "`ft_proj_selector` is the projection-head layer fine-tuning starts "
                f"from: 0 (h) to num_proj_layers={self.num_proj_layers}. Received: "
                f"ft_proj_selector={self.ft_proj_selector}"
            )
        if not 0 < self.finetune_label_fraction <= 1:
            raise ValueError(
                "`finetune_label_fraction` must be in (0, 1]. Received: "
                f"finetune_label_fraction={self.finetune_label_fraction}"
            )
        _check_checkpoint_fields(self)

    def section(self, name):
        """The fields of section `name` and their values, as a dict."""
        return {field.name: getattr(self, field.name) for field in fields(name)}

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def fields(section=None):
    """The fields of `Config` (of one section), in their order of `--help`."""
    every = dataclasses.fields(Config)
    return tuple(f for f in every if section is None or f.metadata["section"] == section)


def field(name):
    """The `dataclasses.Field` of `Config` called `name` (help, choices, default)."""
    return {f.name: f for f in dataclasses.fields(Config)}[name]


def value_type(field_):
    """The type of a field's values: `int` for `int | None`, `tuple` for tuples."""
    kinds = typing.get_args(field_.type) or (field_.type,)
    return next(k for k in kinds if k is not type(None))


def reuse(name, default=dataclasses.MISSING, *, help=None, to_job=True):
    """A field of another dataclass declared as `Config`'s field `name`.

    It keeps the job field's help text and checks, with its own default; a
    benchmark's configuration declares its pretraining fields this way, and
    `metadata["job_field"]` names the job's field it sets (`None` with
    `to_job=False`: the same meaning, not passed to the job).
    """
    source = field(name)
    metadata = dict(source.metadata)
    metadata["help"] = help or metadata["help"]
    metadata["job_field"] = name if to_job else None
    return dataclasses.field(
        default=source.default if default is dataclasses.MISSING else default,
        metadata=metadata,
    )


def check_fields(instance):
    """Checks the fields of a dataclass that have `choices` or `at_least` metadata."""
    for field_ in dataclasses.fields(instance):
        value = getattr(instance, field_.name)
        # A field whose default is None ("unset", e.g. `backend`) may stay None.
        if value is None and field_.default is None:
            continue
        choices = field_.metadata.get("choices")
        if choices is not None:
            for item in value if isinstance(value, (tuple, list)) else (value,):
                checks.one_of(field_.name, item, choices)
        at_least = field_.metadata.get("at_least")
        if at_least is not None and value < at_least:
            raise ValueError(
                f"`{field_.name}` must be >= {at_least}. Received: {field_.name}={value}"
            )


def _check_checkpoint_fields(config):
    """`checkpoint` (official weights) goes with the modes that read it."""
    if config.mode == "convert" and not config.checkpoint:
        raise ValueError(
            "--mode=convert converts --checkpoint=PATH (an official SimCLR checkpoint or "
            "SavedModel) into Keras files in --model_dir: set --checkpoint."
        )
    if config.checkpoint and config.mode not in ("convert", "eval"):
        raise ValueError(
            "--checkpoint (official weights) is read by --mode=convert and --mode=eval "
            "(evaluate them, or fine-tune them with --train_mode=finetune); pretraining "
            f"starts from scratch. Received: mode={config.mode!r}"
        )
    if config.verify and config.mode != "convert":
        raise ValueError(
            "--verify checks a conversion: use it with --mode=convert and a SavedModel "
            f"--checkpoint. Received: mode={config.mode!r}"
        )
