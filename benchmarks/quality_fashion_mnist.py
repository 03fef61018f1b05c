"""Quality benchmark: SimCLR on Fashion-MNIST against its baselines, in one table.

One run pretrains SimCLR on the 60,000 Fashion-MNIST training images without their
labels (`keras_simclr.runner.pretrain`, the job the `simclr` command line runs), then
scores representations on the 10,000 test images, each row with its wall-clock time:

- the SimCLR encoder h: linear evaluation (multinomial logistic regression on the
  frozen, standardised features, L-BFGS, L2 strength chosen on a validation split;
  the paper's protocol, Section 4 and Appendix B.6) and a weighted kNN (k=200, T=0.1);
- the same architecture randomly initialised: the same two protocols;
- raw pixels: the same two protocols on the 784 pixel values;
- the same architecture trained supervised with every label
  (`keras_simclr.evaluation.supervised_baseline`, Figure 1's comparison), then its h,
  frozen, by the same two protocols: what an encoder trained with the labels scores
  with them, the yardstick of the linear and kNN figures above.

Configurations (`--config`):

- `quick`: about 30 minutes on 2 CPU cores, baselines included: a quarter-width
  ResNet-18, batch 256, a few epochs. The figures in the README come from it.
- `long`: for bigger machines (a GPU, or 16+ cores): a half-width ResNet-18, batch
  512, 100 epochs, temperature 0.5 and weight decay 1e-4 as in the reference's
  CIFAR-10 command; the supervised baseline gets 30 epochs.
- `main`: the `simclr` command's defaults (the main job, `make run`).
- `30min`: the study's recipe for 30 minutes of pretraining and evaluation on 2
  cores (docs/quality_study.md): the main job's settings on a half-width ResNet-18
  for 3 epochs (`simclr --width_multiplier=0.5 --train_epochs=3`), chosen on the
  validation split over 11 epochs of the quarter width, which take the same time.
- `tiny`: a few steps on a few hundred images (seconds; the smoke test).

Every knob of the configuration has a flag, so the paper's ablations run by flags
(Section 4-5; the other knobs stay at the configuration's values):

    --color_jitter_strength=0     crop and flip only ("no colour jitter", Figure 5)
    --num_proj_layers=linear      a linear projection head (Figure 8); 0: no head
    --temperature=0.5             the temperature (Table 5)
    --use_blur                    Gaussian blur, which the grayscale preset leaves out
                                  at 28 px (the paper's ImageNet augmentation, Figure 4)
    --eval_head_layers=1,2        also evaluate the head's layer outputs (which layer is
                                  kept, Figure 8's comparison of h and g(h))

`--baselines=` (empty) skips the baselines, whose figures do not depend on these
knobs. The table is Markdown, to paste into the README; `--output` writes the rows,
the configuration and the machine as JSON. The header gives the machine, the date,
the versions and the load average: on a shared machine the times grow, the
accuracies do not.

Usage:

    python benchmarks/quality_fashion_mnist.py --config=quick --output=quality.json
    python benchmarks/quality_fashion_mnist.py --config=quick --color_jitter_strength=0 \\
        --baselines=
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_simclr import augment  # noqa: E402
from keras_simclr import config as job_config  # noqa: E402
from keras_simclr import data  # noqa: E402
from keras_simclr import evaluation  # noqa: E402
from keras_simclr import models  # noqa: E402
from keras_simclr import runner  # noqa: E402

DATASET = "fashion_mnist"
BASELINES = ("random", "raw_pixels", "supervised")
SUPERVISED_AUGMENTATIONS = ("none", "flip", "crop_flip")
# "Clearly above" the raw pixels and the random encoder, in accuracy points, and at
# most this far below the supervised encoder: the targets for `quick`.
_TARGET_MARGIN = 1.0
_TARGET_SUPERVISED_GAP = 3.0


_reuse = job_config.reuse
_option = job_config.option


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """The knobs of one benchmark run; `CONFIGS` holds the named presets.

    The pretraining fields are the job's (`keras_simclr.config.Config`: help text,
    type and allowed values; `metadata["job_field"]` names the job's field, which
    differs for `epochs`, `batch_size` and `test_split`) with the defaults of the
    `quick` preset; the others set the baselines and the evaluation.
    """

    name: str
    train_split: str = _reuse("train_split")
    test_split: str = _reuse("eval_split", help="Split the accuracies are measured on.")
    resnet_depth: int = _reuse("resnet_depth")
    width_multiplier: float = _reuse("width_multiplier")
    stem_stride: int = _reuse("stem_stride")
    epochs: int = _reuse("train_epochs", 5)
    train_steps: int = _reuse("train_steps")
    batch_size: int = _reuse("train_batch_size")
    # Square-root scaling (0.075 x sqrt(256) = 1.2 here): the paper's choice for small
    # batches and short runs (Appendix B.1); measured here, it beat linear scaling
    # (0.3) by 2.8 points of linear evaluation after 150 steps.
    learning_rate: float = _reuse("learning_rate", 0.075)
    learning_rate_scaling: str = _reuse("learning_rate_scaling", "sqrt")
    warmup_epochs: float = _reuse("warmup_epochs", 0.5)
    weight_decay: float = _reuse("weight_decay", 1e-6)
    optimizer: str = _reuse("optimizer", "lars")
    momentum: float = _reuse("momentum")
    objective: str = _reuse("objective")
    temperature: float = _reuse("temperature")
    color_jitter_strength: float | None = _reuse("color_jitter_strength")
    crop_scale: tuple = _reuse("crop_scale")
    use_blur: bool | None = _reuse("use_blur")
    num_proj_layers: int = _reuse(
        "num_proj_layers",
        help="Layers of the projection head: 2 (non-linear), linear (= 1) or none (= 0) "
        "(ablation: Figure 8).",
    )
    proj_hidden_dim: int | None = _reuse("proj_hidden_dim")
    probe_learning_rate: float = _reuse("probe_learning_rate")
    probe_average: float = _reuse("probe_average")
    eval_head_layers: tuple = _option(
        (),
        "Comma-separated projection-head layers whose outputs are also evaluated, e.g. "
        "1,2 (1: the first layer, after its ReLU, SimCLRv2's fine-tuning start; the "
        "head's last layer: z). h is always evaluated.",
    )
    supervised_epochs: int = _option(3, "Epochs of the supervised baseline.", at_least=1)
    supervised_batch_size: int = _option(
        256, "Batch size of the supervised baseline.", at_least=1
    )
    supervised_augment: str = _option(
        "crop_flip", "Augmentation of the supervised baseline.", choices=SUPERVISED_AUGMENTATIONS
    )
    knn_k: int = _option(200, "Neighbours of the kNN protocol.", at_least=1)
    raw_pixels_l2_grid: tuple = _option((1e-2, 1e-3, 1e-4), None)
    # The benchmark's own feature extraction (the job's runs no evaluation here).
    eval_batch_size: int = _reuse("eval_batch_size", 1024, to_job=False)
    mixed_precision: str = _reuse("mixed_precision")
    seed: int = _reuse(
        "seed", help="Seed of initialisation, shuffling, augmentation and validation splits."
    )


def _job_fields(config_class=None):
    """{benchmark field: job field} of the fields that set the job's."""
    return {
        field.name: field.metadata["job_field"]
        for field in dataclasses.fields(config_class or QualityConfig)
        if field.metadata.get("job_field")
    }


def _job_defaults(name, **overrides):
    """A configuration with the pretraining settings of `runner.Config()`'s defaults."""
    job = runner.Config()
    fields = {ours: getattr(job, theirs) for ours, theirs in _job_fields().items()}
    return QualityConfig(name=name, **{**fields, **overrides})


CONFIGS = {
    "tiny": QualityConfig(
        name="tiny",
        train_split="train[:512]",
        test_split="test[:256]",
        width_multiplier=0.125,
        epochs=1,
        train_steps=3,
        batch_size=64,
        warmup_epochs=0.0,
        supervised_epochs=1,
        supervised_batch_size=64,
        knn_k=20,
        raw_pixels_l2_grid=(1e-3,),
        eval_batch_size=256,
    ),
    "quick": QualityConfig(name="quick"),
    # The `simclr` command's defaults (`make run`), read from the job's Config.
    "main": _job_defaults("main"),
    # The study's recipe for 30 minutes of pretraining and evaluation on 2 cores
    # (docs/quality_study.md); `simclr` runs it with the flags in the README.
    "30min": _job_defaults("30min", epochs=3, width_multiplier=0.5),
    "long": QualityConfig(
        name="long",
        width_multiplier=0.5,
        epochs=100,
        batch_size=512,
        warmup_epochs=10.0,
        weight_decay=1e-4,
        temperature=0.5,
        supervised_epochs=30,
        raw_pixels_l2_grid=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
    ),
}

# Fields whose flag is parsed by `resolve_config` (`num_proj_layers` also takes
# "linear" and "none"; `crop_scale` is "low,high"; `eval_head_layers` "1,2").
_PARSED_LATER = ("num_proj_layers", "crop_scale", "eval_head_layers")


def _flag_fields():
    """The fields a flag may override: those with help text."""
    return [field for field in dataclasses.fields(QualityConfig) if field.metadata.get("help")]


def _boolean(text):
    """`true`/`false` (also 1/0, yes/no) of a boolean flag."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, received {text!r}")
    return value[text.lower()]


def parse_args(argv=None):
    """The command line: a preset, overrides of its fields, and where results go."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Configurations: " + ", ".join(CONFIGS) + ". See the module docstring.",
    )
    parser.add_argument("--config", choices=tuple(CONFIGS), default="quick")
    for field in _flag_fields():
        kind = job_config.value_type(field)
        if kind is bool:  # --name alone is --name=true
            parser.add_argument(
                f"--{field.name}", type=_boolean, nargs="?", const=True, default=None,
                help=field.metadata["help"],
            )
            continue
        parser.add_argument(
            f"--{field.name}",
            type=str if field.name in _PARSED_LATER or kind is tuple else kind,
            default=None,
            help=field.metadata["help"],
        )
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help=f"comma-separated baselines to run, of {', '.join(BASELINES)}; empty: none",
    )
    parser.add_argument("--data_dir", default=None, help="directory of the Fashion-MNIST files")
    parser.add_argument(
        "--model_dir",
        default=None,
        help="where the pretrained model is kept (must not hold a run already); "
        "default: a temporary directory, deleted afterwards",
    )
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    return parser.parse_args(argv)


def resolve_config(args):
    """The preset of `args.config` with the flags' overrides, checked."""
    overrides = {
        field: getattr(args, field)
        for field in (f.name for f in _flag_fields())
        if getattr(args, field) is not None
    }
    if "num_proj_layers" in overrides:
        overrides["num_proj_layers"] = _head_layers(overrides["num_proj_layers"])
    if "crop_scale" in overrides:
        try:
            overrides["crop_scale"] = tuple(float(v) for v in overrides["crop_scale"].split(","))
        except ValueError:
            raise ValueError(
                "`crop_scale` must be two numbers low,high, e.g. 0.2,1.0. Received: "
                f"crop_scale={overrides['crop_scale']!r}"
            ) from None
    if "eval_head_layers" in overrides:
        overrides["eval_head_layers"] = _layer_list(overrides["eval_head_layers"])
    config = dataclasses.replace(CONFIGS[args.config], **overrides)
    # The job's checks of the pretraining fields, and the benchmark's own.
    job_config.check_fields(config)
    _check_head_layers(config)
    return config


def _layer_list(text):
    try:
        return tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise ValueError(
            "`eval_head_layers` must be comma-separated layer numbers, e.g. 1,2. "
            f"Received: eval_head_layers={text!r}"
        ) from None


def _check_head_layers(config):
    """Each layer of `eval_head_layers` exists in the head the run trains."""
    bad = [k for k in config.eval_head_layers if not 1 <= k <= config.num_proj_layers]
    if bad:
        head = (
            "no projection head (--num_proj_layers=0)"
            if config.num_proj_layers == 0
            else f"layers 1 to {config.num_proj_layers}"
        )
        raise ValueError(
            f"`eval_head_layers` names layers {bad}, but the projection head has {head}; "
            "h (layer 0) is always evaluated. Pass layers within the head, or a deeper "
            f"--num_proj_layers. Received: eval_head_layers={config.eval_head_layers}"
        )


def _head_layers(value):
    names = {"none": 0, "linear": 1, "nonlinear": 2}
    if value in names:
        return names[value]
    try:
        layers = int(value)
    except ValueError:
        layers = -1
    if layers < 0:
        raise ValueError(
            "`num_proj_layers` must be a number of layers >= 0, 'linear' or 'none'. "
            f"Received: num_proj_layers={value!r}"
        )
    return layers


def resolve_baselines(text):
    """The baselines named in the comma-separated `text`, in the table's order."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(BASELINES))
    if unknown:
        raise ValueError(
            f"Unknown baselines {unknown}. Expected a comma-separated subset of "
            f"{list(BASELINES)}, or an empty string for none. Received: baselines={text!r}"
        )
    return tuple(name for name in BASELINES if name in names)


def pretraining_config(config, model_dir, data_dir=None):
    """The `keras_simclr.runner.Config` that pretrains SimCLR for `config`."""
    return runner.Config(
        mode="train",
        dataset=DATASET,
        data_dir=data_dir,
        **{theirs: getattr(config, ours) for ours, theirs in _job_fields().items()},
        model_dir=model_dir,
        # The benchmark times one uninterrupted run; the final checkpoint and the
        # saved encoder are still written.
        checkpoint_epochs=0,
        verbose=2,
    )


# Context ---------------------------------------------------------------------------


def machine():
    """The CPU, cores, memory, load average and versions this run measures."""
    model, flags = platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == platform.machine():
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": model,
        "bf16": bool({"avx512_bf16", "amx_bf16"} & flags),
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib,
        "load_average": _load_average(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "commit": _commit(),
    }


def _commit():
    """The git commit of the code this run measures (with "+dirty" for local edits)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _describe(info):
    memory = f", {info['memory_gib']:.0f} GiB" if info["memory_gib"] else ""
    gpus = f", {info['gpus']} GPU(s)" if info["gpus"] else ", no GPU"
    return (
        f"{info['date']}; {info['cpu']}{' (bf16)' if info['bf16'] else ''}, "
        f"{info['cores']} cores{memory}{gpus}; load average {info['load_average']}; "
        f"Python {info['python']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}"
    )


# Rows ------------------------------------------------------------------------------


def _row(representation, result):
    return {
        "representation": representation,
        "protocol": result.protocol,
        "top1": result.accuracy,
        "top5": result.top5_accuracy,
        "num_train": result.num_train,
        "num_test": result.num_test,
        "seconds": result.seconds,
        "details": result.details,
    }


def _protocol_rows(representation, encoder, train_data, test_data, config, l2_grid=None):
    """Linear evaluation and kNN of one representation, as table rows.

    The features are extracted once and both protocols read them through an identity
    "encoder": the same results as passing `encoder` to each protocol, one pass over
    the images fewer. The linear row's time includes the extraction.
    """
    start = time.perf_counter()
    train_h, train_y = evaluation.extract_features(
        encoder, train_data, batch_size=config.eval_batch_size
    )
    test_h, test_y = evaluation.extract_features(
        encoder, test_data, batch_size=config.eval_batch_size
    )
    extraction_seconds = time.perf_counter() - start
    # float32 under any global policy: features are compared, not computed, here.
    features = keras.Sequential(
        [keras.Input((train_h.shape[1],)), keras.layers.Identity(dtype="float32")]
    )
    train_features, test_features = (train_h, train_y), (test_h, test_y)
    common = dict(batch_size=config.eval_batch_size, dataset_name=DATASET)
    linear_options = {} if l2_grid is None else {"l2_grid": l2_grid}
    linear = evaluation.linear_eval(
        features, train_features, test_features, seed=config.seed, **linear_options, **common
    )
    knn = evaluation.knn_eval(features, train_features, test_features, k=config.knn_k, **common)
    rows = [_row(representation, linear), _row(representation, knn)]
    rows[0]["seconds"] += extraction_seconds
    for row in rows:
        row["details"] = {**row["details"], "feature_extraction_seconds": extraction_seconds}
    return rows


def _head_features(model, layer, image_shape):
    """The encoder followed by the projection head's first `layer` layers, in
    inference mode (batch norm on its moving statistics)."""
    images = keras.Input(image_shape)
    head = models.projection_head_layers(model.projection_head, layer)
    features = head(model.encoder(images, training=False), training=False)
    return keras.Model(images, features, name=f"head_layer{layer}")


def _encoder(config, image_shape, name):
    return models.resnet(
        config.resnet_depth, config.width_multiplier, input_shape=image_shape, name=name,
        stem_stride=config.stem_stride,
    )


def _supervised_augment(config, image_shape):
    if config.supervised_augment == "none":
        return None
    # float32 layers: under a mixed policy the views would otherwise come out in
    # bfloat16 from the input pipeline.
    if config.supervised_augment == "flip":
        return keras.layers.RandomFlip("horizontal", seed=config.seed, dtype="float32")
    # SimCLR's own crop (area 0.08-1, aspect 3/4-4/3) and flip, so that the supervised
    # encoder sees the geometric augmentations the contrastive one learns from.
    return augment.crop_and_flip(image_shape[:2], seed=config.seed)


def _architecture(config):
    return f"ResNet-{config.resnet_depth} x{config.width_multiplier:g}"


def run(config, baselines=BASELINES, model_dir=None, data_dir=None, output=None, command=None):
    """Runs the benchmark for `config` and prints the table; returns the record.

    Args:
        config: a `QualityConfig`.
        baselines: the baselines to run, a subset of `BASELINES`.
        model_dir: where `runner.pretrain` keeps the pretrained model; `None` for a
            temporary directory deleted at the end.
        data_dir: the directory of the Fashion-MNIST files (default: the Debian
            package's, else TensorFlow Datasets).
        output: a JSON file to write the record to, or `None`.
        command: the command line to print and record.

    Returns:
        A dict: `rows` (one per table row), `table` (the Markdown), `targets`, the
        configurations, the machine and the times.
    """
    started = time.perf_counter()
    context = machine()
    temporary = model_dir is None
    if temporary:
        model_dir = tempfile.mkdtemp(prefix="simclr_quality_")
    elif os.path.exists(os.path.join(model_dir, "checkpoints")):
        raise ValueError(
            f"model_dir {model_dir!r} already holds a pretraining run, which "
            "`runner.pretrain` would resume: the benchmark times a fresh run. Pass an "
            "empty or new --model_dir."
        )
    simclr_config = pretraining_config(config, model_dir, data_dir)
    print(f"# Quality benchmark: SimCLR on Fashion-MNIST ({config.name})", flush=True)
    print(f"Machine: {_describe(context)}", flush=True)
    if command:
        print(f"Command: {command}", flush=True)
    print(f"Configuration: {json.dumps(dataclasses.asdict(config), sort_keys=True)}", flush=True)

    # One policy for every encoder in the table, the one pretraining sets.
    keras.mixed_precision.set_global_policy(runner.mixed_precision_policy(config.mixed_precision))
    info = data.info(DATASET, config.train_split, data_dir=data_dir)
    image_shape = tuple(info.image_shape)
    train_data, test_data = (
        data.evaluation_dataset(data.load(DATASET, split, data_dir=data_dir), config.eval_batch_size)
        for split in (config.train_split, config.test_split)
    )
    rows = []
    try:
        pretrain_start = time.perf_counter()
        model, history = runner.pretrain(simclr_config)
        pretrain_seconds = time.perf_counter() - pretrain_start
        plan = runner.plan(simclr_config)
        simclr = f"SimCLR encoder ({_architecture(config)})"
        rows.append(
            {
                "representation": simclr,
                "protocol": (
                    f"pretraining, no labels ({plan.total_steps} steps of "
                    f"{config.batch_size}, {plan.total_steps / plan.steps_per_epoch:.3g} epochs)"
                ),
                "top1": None,
                "top5": None,
                "num_train": info.num_examples,
                "num_test": None,
                "seconds": pretrain_seconds,
                "details": {
                    "images_per_second": plan.total_steps * config.batch_size / pretrain_seconds,
                    "history": {key: [float(v) for v in values] for key, values in history.items()},
                },
            }
        )
        rows += _protocol_rows(simclr, model.encoder, train_data, test_data, config)
        for layer in config.eval_head_layers:
            rows += _protocol_rows(
                f"{simclr}, projection-head layer {layer}",
                _head_features(model, layer, image_shape),
                train_data, test_data, config,
            )
    finally:
        if temporary:
            shutil.rmtree(model_dir, ignore_errors=True)

    if "random" in baselines:
        keras.utils.set_random_seed(config.seed)
        random_encoder = _encoder(config, image_shape, "random_encoder")
        rows += _protocol_rows(
            f"random encoder ({_architecture(config)})", random_encoder, train_data,
            test_data, config,
        )
    if "raw_pixels" in baselines:
        pixels = keras.Sequential(
            [keras.Input(image_shape), keras.layers.Flatten(dtype="float32")], name="pixels"
        )
        rows += _protocol_rows(
            f"raw pixels ({pixels.output_shape[-1]})", pixels, train_data, test_data,
            config, l2_grid=config.raw_pixels_l2_grid,
        )
    if "supervised" in baselines:
        keras.utils.set_random_seed(config.seed)
        result, classifier = evaluation.supervised_baseline(
            _encoder(config, image_shape, "supervised_encoder"),
            train_data,
            test_data,
            augment=_supervised_augment(config, image_shape),
            epochs=config.supervised_epochs,
            batch_size=config.supervised_batch_size,
            seed=config.seed,
            dataset_name=DATASET,
        )
        row = _row(f"supervised encoder ({_architecture(config)})", result)
        row["protocol"] = (
            f"{result.protocol}, {config.supervised_epochs} "
            f"epoch{'s' if config.supervised_epochs > 1 else ''}, "
            f"{config.supervised_augment.replace('_', '+')} augmentation"
        )
        rows.append(row)
        rows += _protocol_rows(
            f"supervised encoder's h ({_architecture(config)})", classifier.layers[0],
            train_data, test_data, config,
        )

    total_seconds = time.perf_counter() - started
    table = markdown_table(rows)
    targets = target_lines(rows)
    load_end = _load_average()
    print(table, flush=True)
    print(
        f"Total wall-clock: {total_seconds:.0f} s ({total_seconds / 60:.1f} min); load "
        f"average {context['load_average']} at the start, {load_end} at the end.",
        flush=True,
    )
    for line in targets:
        print(line, flush=True)
    record = {
        "benchmark": "quality_fashion_mnist",
        "command": command,
        "config": dataclasses.asdict(config),
        "pretraining_config": dataclasses.asdict(simclr_config),
        "baselines": list(baselines),
        "machine": context,
        "load_average_end": load_end,
        "total_seconds": total_seconds,
        "rows": rows,
        "table": table,
        "targets": targets,
    }
    if output:
        directory = os.path.dirname(output)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(output, "w") as f:
            json.dump(_jsonable(record), f, indent=2)
            f.write("\n")
        print(f"Wrote {output}", flush=True)
    return record


def markdown_table(rows):
    """The rows as a Markdown table: accuracies in percent, times in seconds."""
    header = ("representation", "protocol", "top-1 %", "top-5 %", "train", "test", "time")
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] * 2 + ["---:"] * 5) + " |",
    ]
    for row in rows:
        cells = (
            row["representation"],
            row["protocol"],
            "-" if row["top1"] is None else f"{100 * row['top1']:.2f}",
            "-" if row["top5"] is None else f"{100 * row['top5']:.2f}",
            "-" if row["num_train"] is None else str(row["num_train"]),
            "-" if row["num_test"] is None else str(row["num_test"]),
            f"{row['seconds']:.0f} s",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(rows):
    """The issue's targets, each with the measured margin and whether it is met."""

    def linear(prefix):
        for row in rows:
            if row["representation"].startswith(prefix) and row["protocol"].startswith("linear"):
                return row["top1"]
        return None

    simclr = linear("SimCLR")
    supervised = next(
        (row["top1"] for row in rows if row["protocol"].startswith("supervised")), None
    )
    lines = []
    for name, reference in (("raw pixels", linear("raw pixels")), ("the random encoder", linear("random"))):
        if simclr is None or reference is None:
            continue
        margin = 100 * (simclr - reference)
        met = "met" if margin >= _TARGET_MARGIN else "NOT met"
        lines.append(
            f"Target: SimCLR linear evaluation clearly above {name} (>= {_TARGET_MARGIN:g} "
            f"point): {margin:+.2f} points, {met}."
        )
    if simclr is not None and supervised is not None:
        gap = 100 * (supervised - simclr)
        met = "met" if gap <= _TARGET_SUPERVISED_GAP else "NOT met"
        side = f"{gap:.2f} points below" if gap >= 0 else f"{-gap:.2f} points above"
        lines.append(
            f"Target: SimCLR linear evaluation within {_TARGET_SUPERVISED_GAP:g} points of "
            f"the supervised encoder: {side}, {met}."
        )
    return lines


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def main(argv=None):
    """Parses `argv` (default: the command line), runs, and returns the record."""
    args = parse_args(argv)
    config = resolve_config(args)
    baselines = resolve_baselines(args.baselines)
    argv = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/quality_fashion_mnist.py", *argv])
    policy = keras.mixed_precision.global_policy()
    try:
        return run(config, baselines, args.model_dir, args.data_dir, args.output, command)
    finally:
        # A caller in the same process (a test) keeps its own policy.
        keras.mixed_precision.set_global_policy(policy)


if __name__ == "__main__":
    main()
