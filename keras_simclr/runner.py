"""The whole job: pretrain SimCLR, then evaluate the representation; resumable.

The command line (`keras_simclr.cli`) turns flags into a `Config` and calls `run`;
a user script can do the same without flags.
"""

import dataclasses
import json
import logging
import os
import sys
import time

import keras
import tensorflow as tf

from keras_simclr import augment
from keras_simclr import backends
from keras_simclr import config as config_lib
from keras_simclr import data
from keras_simclr import distribute
from keras_simclr import evaluation
from keras_simclr import files
from keras_simclr import models
from keras_simclr import optimizers
from keras_simclr import visualization

log = logging.getLogger("keras_simclr")

# The configuration lives in `keras_simclr.config`; `runner.Config` is the same class.
Config = config_lib.Config

# Fields that fix the shapes of the saved variables: a model_dir written with other
# values holds checkpoints this run cannot continue.
ARCHITECTURE_FIELDS = (
    "dataset",
    "image_size",
    "method",
    "encoder",
    "resnet_depth",
    "width_multiplier",
    "sk_ratio",
    "proj_out_dim",
    "num_proj_layers",
    "lineareval_while_pretraining",
)


# Set-up ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the data set and the configuration imply: sizes and step counts."""

    info: data.DatasetInfo
    image_size: int
    channels: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    preset: str
    requested_warmup_steps: int  # what `warmup_epochs` asks for, before the clamp


def plan(config):
    """Resolves the data set and derives image size, steps and augmentation preset."""
    info = data.info(config.dataset, config.train_split, data_dir=config.data_dir)
    height, width, channels = info.image_shape
    native = min(height, width) if height and width else None
    image_size = config.image_size or native or 224
    if native and image_size > native:
        raise ValueError(
            f"`image_size`={image_size} is larger than the {height}x{width} images of "
            f"{config.dataset!r}: random crops would only upsample. Use "
            f"--image_size={native} or smaller."
        )
    steps_per_epoch = info.num_examples // config.train_batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`train_batch_size`={config.train_batch_size} is larger than the "
            f"{info.num_examples} training examples of {config.dataset!r}."
        )
    total_steps = config.train_steps or config.train_epochs * steps_per_epoch
    requested_warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    # A run shorter than its warm-up warms up over the whole run, with no decay.
    warmup_steps = min(requested_warmup_steps, total_steps)
    if channels == 1:
        preset = "grayscale"
    elif image_size <= 64:
        preset = "cifar"
    else:
        preset = "imagenet"
    return Plan(
        info, image_size, channels, steps_per_epoch, total_steps, warmup_steps, preset,
        requested_warmup_steps,
    )


def _cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def mixed_precision_policy(setting):
    """The Keras dtype policy for `setting` ("auto": bf16 where the hardware has it)."""
    if setting == "auto":
        has_bf16 = tf.config.list_logical_devices("TPU") or _cpu_has_bf16()
        return "mixed_bfloat16" if has_bf16 else "float32"
    return {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[setting]


def build_augmenter(config, plan_):
    return augment.SimCLRAugment(
        plan_.image_size,
        preset=plan_.preset,
        color_jitter_strength=config.color_jitter_strength,
        blur=config.use_blur,
        crop_scale=tuple(float(v) for v in config.crop_scale),
        seed=config.seed,
    )


def _resnet(config, plan_):
    return models.resnet(
        depth=config.resnet_depth,
        width_multiplier=config.width_multiplier,
        input_shape=(plan_.image_size, plan_.image_size, plan_.channels),
        sk_ratio=config.sk_ratio,
        synchronized_bn=config.global_bn,
        name="encoder",
    )


def _simclr(config, plan_, encoder):
    head = models.projection_head(
        encoder.output_shape[-1],
        num_layers=config.num_proj_layers,
        output_dim=config.proj_out_dim,
        synchronized_bn=config.global_bn,
        name="projection_head",
    )
    return models.SimCLR(
        encoder,
        head,
        augmenter=build_augmenter(config, plan_) if config.augment_in_model else None,
        temperature=config.temperature,
        num_classes=plan_.info.num_classes if config.lineareval_while_pretraining else None,
        objective=config.objective,
        # LARS decays inside its update; the others get the reference's L2 term.
        l2_weight_decay=0.0 if config.optimizer == "lars" else config.weight_decay,
    )


def _lars(config, schedule):
    return optimizers.LARS(schedule, momentum=config.momentum, weight_decay=config.weight_decay)


# The weight decay of the other optimizers is the model's L2 term, as in the
# reference (every weight but batch norm); see `_simclr`.
def _momentum(config, schedule):
    return keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True)


def _adam(config, schedule):
    return keras.optimizers.Adam(schedule)


# What `config.encoder`, `config.method` and `config.optimizer` name: a new one is a
# builder here and its name in the field's choices (`keras_simclr.config`).
ENCODERS = {"resnet": _resnet}  # (config, plan) -> encoder
METHODS = {"simclr": _simclr}  # (config, plan, encoder) -> the model that trains
OPTIMIZERS = {"lars": _lars, "momentum": _momentum, "adam": _adam}  # (config, schedule)


def build_model(config, plan_):
    """The model of `config.method` on `config.encoder`, built under the current
    strategy scope."""
    encoder = ENCODERS[config.encoder](config, plan_)
    return METHODS[config.method](config, plan_, encoder)


def build_optimizer(config, plan_):
    """`config.optimizer` on the warm-up + cosine schedule of the scaled learning rate."""
    base = optimizers.scaled_learning_rate(
        config.learning_rate, config.train_batch_size, config.learning_rate_scaling
    )
    schedule = optimizers.WarmupCosineDecay(base, plan_.warmup_steps, plan_.total_steps)
    return OPTIMIZERS[config.optimizer](config, schedule)


def build_probe_optimizer(config, plan_):
    """The online probe's own optimizer, or `None` to share the encoder's.

    "shared" is the reference's way: the probe steps with the encoder's optimizer,
    excluded from LARS' trust ratio and weight decay, i.e. plain momentum at the
    full learning rate. On h as the encoder gives it that diverges at SimCLR's
    learning rates (probe loss above 50 in the first epoch of a Fashion-MNIST run
    at lr 2.4), so by default the probe has its own Adam on the same warm-up and
    cosine schedule. The probe standardises h first (`SimCLR(probe_batch_norm=
    True)`), so one learning rate suits every run. Fitted offline on the h of a
    3-epoch Fashion-MNIST model, such a probe at 1e-2 scored 84.6% on clean test
    images (linear evaluation: 86.8%), at 1e-3 on raw h 78.2%. During training it
    reports its accuracy on the augmented views, several points lower.
    Neither choice touches the encoder (the probe reads stop_gradient(h)).
    """
    if not config.lineareval_while_pretraining or config.probe_optimizer == "shared":
        return None
    return keras.optimizers.Adam(
        optimizers.WarmupCosineDecay(
            config.probe_learning_rate, plan_.warmup_steps, plan_.total_steps
        )
    )


# Checkpoints and resume ----------------------------------------------------------


def _save_checkpoint(manager, step):
    """Saves checkpoint `step` unless it is the latest already (an epoch's end can
    coincide with a step's; some file systems would append to the files, not
    replace them)."""
    latest = manager.latest_checkpoint
    if latest and latest.rsplit("-", 1)[-1] == str(step):
        return
    manager.save(checkpoint_number=step)


class _Checkpointer(keras.callbacks.Callback):
    """Saves a `tf.train.Checkpoint` every N steps and/or epochs.

    TensorFlow writes checkpoint data under temporary names and publishes the
    `checkpoint` index file atomically, so a run killed mid-save resumes from the
    previous complete checkpoint.
    """

    def __init__(self, manager, every_steps, every_epochs):
        super().__init__()
        self.manager = manager
        self.every_steps = every_steps
        self.every_epochs = every_epochs

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self._step() % self.every_steps == 0:
            _save_checkpoint(self.manager, self._step())

    def on_epoch_end(self, epoch, logs=None):
        if self.every_epochs and (epoch + 1) % self.every_epochs == 0:
            _save_checkpoint(self.manager, self._step())


class _StepLogger(keras.callbacks.Callback):
    """Appends a row to a CSV file every `every` steps: the curves of a short run.

    Each row holds the global step, the fractional epoch and the mean of every
    logged metric over the steps since the previous row (Keras' per-batch logs are
    means since the epoch began; the window mean is derived from two of them).
    A resumed run appends; `visualization.plot_training_curves` keeps the last row of
    a repeated step.
    """

    def __init__(self, path, every, steps_per_epoch):
        super().__init__()
        self.path = path
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self._last = None

    def on_epoch_begin(self, epoch, logs=None):
        self._last = (0, {})

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every and batch + 1 != self.params.get("steps"):
            return
        count, previous = self._last
        seen = batch + 1
        means = {key: float(value) for key, value in (logs or {}).items()}
        window = {
            key: (value * seen - previous.get(key, 0.0) * count) / (seen - count)
            for key, value in means.items()
        }
        self._last = (seen, means)
        if seen == count:
            return
        names = sorted(window)
        new_file = not tf.io.gfile.exists(self.path)
        with tf.io.gfile.GFile(self.path, "a") as f:
            if new_file:
                f.write(",".join(["step", "epoch", *names]) + "\n")
            row = [str(step), f"{step / self.steps_per_epoch:.4f}"]
            f.write(",".join(row + [f"{window[name]:.6g}" for name in names]) + "\n")


def _check_model_dir(config):
    """Refuses a model_dir that holds a run of another architecture."""
    path = os.path.join(config.model_dir, "config.json")
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        previous = json.load(f)
    current = dataclasses.asdict(config)
    different = {
        k: (previous.get(k), current[k])
        for k in ARCHITECTURE_FIELDS
        if k in previous and previous[k] != current[k]
    }
    if different:
        detail = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in different.items())
        raise ValueError(
            f"model_dir {config.model_dir!r} holds a run of a different architecture "
            f"({detail}). Use another --model_dir, or the same settings to resume it; "
            "nothing was overwritten."
        )


def _verbosity(verbose):
    """Keras' progress bar on a terminal, one line per epoch in logs."""
    if verbose is None:
        return 1 if sys.stdout.isatty() else 2
    return verbose


def _epoch_segments(start_step, total_steps, steps_per_epoch):
    """Splits steps [start_step, total_steps) into fit() calls over whole epochs.

    A resumed run can start mid-epoch and the last epoch can be partial; each
    segment is (initial_epoch, epochs, steps_per_epoch, first_step).
    """
    segments = []
    step = start_step
    while step < total_steps:
        epoch = step // steps_per_epoch
        offset = step % steps_per_epoch
        if offset:
            steps = min(steps_per_epoch - offset, total_steps - step)
            segments.append((epoch, epoch + 1, steps, step))
            step += steps
            continue
        full = (total_steps - step) // steps_per_epoch
        if full:
            segments.append((epoch, epoch + full, steps_per_epoch, step))
            step += full * steps_per_epoch
        else:
            segments.append((epoch, epoch + 1, total_steps - step, step))
            step = total_steps
    return segments


def resolve_strategy(config):
    """The strategy of `config`; `cpu_devices` mirrors over that many CPU devices.

    On Keras' JAX backend `tf.distribute` has no part: `keras.distribution`
    would shard each global batch over all local devices. The job's resumable
    pretraining checkpoints with `tf.train.Checkpoint`, which tracks TensorFlow
    variables only, so on JAX it stops here with what to do instead.
    """
    if backends.select(config.backend) != "tensorflow":
        raise ValueError(
            "The command line pretrains with resumable tf.train.Checkpoint "
            "checkpoints, which need Keras' TensorFlow backend; the backend is "
            f"{keras.backend.backend()!r}. Run the job with --backend=tensorflow, or "
            "pretrain on JAX from Python: keras_simclr.distribute.data_parallel(), "
            "keras_simclr.models.SimCLR(...).fit(...), model.save('simclr.keras') "
            "(see the README's section on backends)."
        )
    if config.cpu_devices:
        if config.strategy not in ("auto", "mirrored"):
            raise ValueError(
                "`cpu_devices` mirrors over logical CPU devices, so it needs "
                f"strategy 'mirrored' (or 'auto'). Received: strategy={config.strategy!r}"
            )
        devices = distribute.split_cpu(config.cpu_devices)
        return distribute.resolve_strategy("mirrored", devices=devices)
    return distribute.resolve_strategy(config.strategy, tpu_name=config.tpu_name)


def pretrain(config):
    """Pretrains SimCLR as `config` says, resuming from `model_dir` when possible.

    Returns:
        The trained `SimCLR` model and the training history (dict of lists).
    """
    strategy = resolve_strategy(config)  # first: splitting the CPU precedes any op
    plan_ = plan(config)
    if config.mode == "train_then_eval":
        _check_evaluation_inputs(config, plan_, encoder_file=False)
    _check_model_dir(config)
    replicas = strategy.num_replicas_in_sync
    distribute.per_replica_batch_size(config.train_batch_size, replicas)
    keras.mixed_precision.set_global_policy(mixed_precision_policy(config.mixed_precision))
    keras.utils.set_random_seed(config.seed)
    tf.io.gfile.makedirs(config.model_dir)

    with strategy.scope():
        model = build_model(config, plan_)
        model.compile(
            optimizer=build_optimizer(config, plan_),
            probe_optimizer=build_probe_optimizer(config, plan_),
            jit_compile=config.jit_compile,
        )
        model.build_optimizers()
    tracked = dict(model=model, optimizer=model.optimizer)
    if model.probe_optimizer is not None:
        tracked["probe_optimizer"] = model.probe_optimizer
    checkpoint = tf.train.Checkpoint(**tracked)
    manager = tf.train.CheckpointManager(
        checkpoint,
        os.path.join(config.model_dir, "checkpoints"),
        max_to_keep=config.keep_checkpoint_max,
    )
    if manager.latest_checkpoint:
        try:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise ValueError(
                f"The checkpoint {manager.latest_checkpoint!r} does not match this "
                f"model ({error}). Use another --model_dir; nothing was overwritten."
            ) from None
    files.write_atomic(os.path.join(config.model_dir, "config.json"), config.to_json())
    start = int(model.optimizer.iterations.numpy())
    print(
        f"Pretraining on {config.dataset!r} on {replicas} replica{'s' if replicas > 1 else ''} "
        f"({type(strategy).__name__}): {plan_.total_steps} steps of global batch "
        f"{config.train_batch_size}, {plan_.image_size}px views, "
        f"{keras.mixed_precision.global_policy().name}",
        flush=True,
    )
    if plan_.warmup_steps < plan_.requested_warmup_steps:
        message = (
            f"Warm-up shortened to the whole run: {plan_.warmup_steps} steps "
            f"(--warmup_epochs={config.warmup_epochs} asks for "
            f"{plan_.requested_warmup_steps}), so the learning rate rises until the "
            "last step and never decays"
        )
        log.info(message)
        print(message, flush=True)
    if start:
        log.info("Resuming from step %d of %d", start, plan_.total_steps)
        print(f"Resuming from step {start} of {plan_.total_steps}", flush=True)

    # Images of different sizes stay at full resolution: the host augmentation crops
    # each one before batching. A model that augments needs batches of one size.
    full_resolution = _sizes_differ(plan_) and not config.augment_in_model
    source = data.load(
        config.dataset, config.train_split, data_dir=config.data_dir,
        image_size=None if full_resolution else plan_.image_size,
    )
    host_augment = None if config.augment_in_model else build_augmenter(config, plan_)
    callbacks = [
        _Checkpointer(manager, config.checkpoint_steps, config.checkpoint_epochs),
        keras.callbacks.TensorBoard(
            os.path.join(config.model_dir, "logs"), update_freq=config.log_every_steps
        ),
        _StepLogger(
            os.path.join(config.model_dir, "history.csv"),
            config.log_every_steps,
            plan_.steps_per_epoch,
        ),
    ]
    history = {}
    started = time.time()
    for initial_epoch, epochs, steps, first_step in _epoch_segments(
        start, plan_.total_steps, plan_.steps_per_epoch
    ):

        options = dict(
            augment=host_augment,
            seed=config.seed + first_step,
            labels=config.lineareval_while_pretraining,
        )
        dataset = (
            data.distributed_pretraining_dataset(
                strategy, source, config.train_batch_size, **options
            )
            if replicas > 1
            else data.pretraining_dataset(source, config.train_batch_size, **options)
        )
        result = model.fit(
            dataset,
            initial_epoch=initial_epoch,
            epochs=epochs,
            steps_per_epoch=steps,
            callbacks=callbacks,
            shuffle=False,  # the dataset is shuffled, seeded by the step
            verbose=_verbosity(config.verbose),
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
    if int(model.optimizer.iterations.numpy()) > start:
        _save_checkpoint(manager, int(model.optimizer.iterations.numpy()))
    seconds = time.time() - started
    files.save_atomic(model, os.path.join(config.model_dir, "model.keras"))
    files.save_atomic(model.encoder, os.path.join(config.model_dir, "encoder.keras"))
    steps_run = plan_.total_steps - start
    if steps_run:
        images_per_second = steps_run * config.train_batch_size / seconds
        print(
            f"Pretrained {steps_run} steps in {seconds:.0f} s "
            f"({images_per_second:.0f} images/s, two views each)",
            flush=True,
        )
    return model, history


def finetune_epochs(config):
    """`finetune_epochs`, or SimCLRv2's: 60 for 1% of the labels or fewer, else 30."""
    if config.finetune_epochs:
        return config.finetune_epochs
    return 60 if config.finetune_label_fraction <= 0.01 else 30


def ft_proj_selector(config):
    """`ft_proj_selector`, or SimCLRv2's: the first head layer when there is one."""
    if config.ft_proj_selector is not None:
        return config.ft_proj_selector
    return min(1, config.num_proj_layers)


def _fine_tune(config, plan_, encoder, projection_head, train, test, preprocess):
    """SimCLRv2's fine-tuning: from projection-head layer `ft_proj_selector`, with
    random crops and flips, on a class-balanced fraction of the labels."""
    selector = ft_proj_selector(config)
    if selector and projection_head is None:
        model = keras.models.load_model(
            os.path.join(config.model_dir, "model.keras"), compile=False
        )
        projection_head = model.projection_head
    return evaluation.fine_tune(
        encoder, train, test, label_fraction=config.finetune_label_fraction,
        head=projection_head if selector else None,
        head_layers=selector,
        augment=augment.crop_and_flip(plan_.image_size, seed=config.seed),
        preprocess=preprocess, epochs=finetune_epochs(config), seed=config.seed,
        dataset_name=config.dataset,
    )


def _check_evaluation_inputs(config, plan_, encoder_file):
    """Fails before any work if the evaluation cannot read what it needs.

    The labelled training split (`plan_` read it), a labelled evaluation split and,
    with `encoder_file`, the trained encoder in `model_dir`; pretraining checks this
    first, so that a missing split is not found after hours of training.
    """
    pretrain_only = " or --mode=train to pretrain only" if config.mode != "eval" else ""
    if plan_.info.num_classes is None:
        raise ValueError(
            f"--train_split={config.train_split!r} of {config.dataset!r} has no labels, "
            "so the representation cannot be evaluated on it (the linear classifier "
            "and kNN train on its labels). Pass a labelled --dataset or --train_split"
            f"{pretrain_only}."
        )
    try:
        eval_info = data.info(config.dataset, config.eval_split, data_dir=config.data_dir)
    except ValueError as error:
        folder_hint = ""
        if config.dataset.startswith("folder:"):
            root = config.dataset[len("folder:"):]
            split_name = config.eval_split.split("[")[0].split("+")[0].strip()
            folder_hint = (
                f"put the evaluation images in {os.path.join(root, split_name)}/ "
                f"(and the training images in {os.path.join(root, 'train')}/), or "
            )
        raise ValueError(
            f"The evaluation split --eval_split={config.eval_split!r} of "
            f"{config.dataset!r} cannot be read: {error} Fix: {folder_hint}evaluate on "
            "a held-out slice (--train_split='train[:90%]' --eval_split='train[90%:]')"
            f"{pretrain_only}. Nothing was trained or written."
        ) from None
    if eval_info.num_classes is None or eval_info.num_examples == 0:
        problem = "has no labels" if eval_info.num_examples else "holds no examples"
        raise ValueError(
            f"--eval_split={config.eval_split!r} of {config.dataset!r} {problem}, so "
            "the representation cannot be evaluated on it. Pass a labelled, non-empty "
            f"--eval_split{pretrain_only}."
        )
    if encoder_file:
        path = os.path.join(config.model_dir, "encoder.keras")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"No trained encoder at {path!r}: run with --mode=train (or "
                "train_then_eval) first, or point --model_dir at a finished run."
            )


def evaluate(config, encoder=None, projection_head=None):
    """Evaluates the encoder saved in `model_dir` (or the one given) on `config`.

    With `train_mode="finetune"` it also fine-tunes (SimCLRv2's recipe) from the
    given `projection_head`, or the one saved in `model_dir`.

    Returns:
        A list of `keras_simclr.evaluation.EvaluationResult`.
    """
    plan_ = plan(config)
    if encoder is None:
        # With an encoder given (train_then_eval), pretrain() checked these already;
        # for a folder data set the check reads every image once.
        _check_evaluation_inputs(config, plan_, encoder_file=True)
    if encoder is None:
        encoder = keras.models.load_model(os.path.join(config.model_dir, "encoder.keras"))
    (train, preprocess), (test, _) = (
        evaluation_data(config, plan_, split)
        for split in (config.train_split, config.eval_split)
    )
    results = []
    common = dict(dataset_name=config.dataset)
    # Features once, in inference mode; every protocol on frozen features reuses them.
    train_features, test_features = (
        evaluation.extract_features(encoder, split, preprocess, config.eval_batch_size)
        for split in (train, test)
    )
    if "linear" in config.eval_protocols:
        results.append(
            evaluation.linear_eval(None, train_features, test_features, seed=config.seed, **common)
        )
    if "knn" in config.eval_protocols:
        # k=200 as usual, unless the training split is smaller than that.
        k = min(200, plan_.info.num_examples)
        results.append(evaluation.knn_eval(None, train_features, test_features, k=k, **common))
    if config.train_mode == "finetune":
        results.append(_fine_tune(config, plan_, encoder, projection_head, train, test, preprocess))
    evaluation.write_results(results, os.path.join(config.model_dir, "results.json"))
    return results


def _sizes_differ(plan_):
    return None in plan_.info.image_shape[:2]


def evaluation_data(config, plan_, split):
    """The evaluation batches of `split` and the preprocessing still to apply to them.

    The reference centre-crops evaluation images (87.5% of the side) only above
    CIFAR size. Images of different sizes are cropped at full resolution, each
    resized once, before batching, as the reference does; images of one size are
    cropped in batches, by the returned `preprocess`.

    Args:
        config: the run's `Config`.
        plan_: its `Plan`.
        split: the split to read, with optional tfds slicing.

    Returns:
        `(dataset, preprocess)`: a dataset of `(images, labels)` batches (float32 in
        [0, 1]) and the callable to apply to them before the encoder, or `None`
        when there is nothing left to do.
    """
    size = plan_.image_size
    if _sizes_differ(plan_):
        # At CIFAR size, no centre crop: the largest central window of the output's
        # aspect ratio.
        crop = augment.CenterCropResize(
            size, size, crop_proportion=0.875 if size > 32 else 1.0
        )
        source = data.load(config.dataset, split, data_dir=config.data_dir)
        return data.evaluation_dataset(source, config.eval_batch_size, crop), None
    preprocess = augment.CenterCropResize(size, size) if size > 32 else None
    source = data.load(config.dataset, split, data_dir=config.data_dir, image_size=size)
    return data.evaluation_dataset(source, config.eval_batch_size), preprocess


# The official weights ---------------------------------------------------------


def convert(config):
    """Writes the official weights `config.checkpoint` as Keras files (--mode=convert).

    `model_dir` gets `model.keras` (the `SimCLR` model: encoder, projection head, and
    the checkpoint's classifier as its probe when that reads h), `encoder.keras`,
    `classifier.keras` when the checkpoint has a classifier, and `conversion.json`
    (what was read; with `verify`, the largest differences from the SavedModel).
    The encoder takes `image_size` images, or any size when it is unset.

    Returns:
        With `verify`, the differences `keras_simclr.models.verify_saved_model`
        measured; else an empty dict.
    """
    saved_model = models.convert.saved_model_directory(config.checkpoint) if config.verify else None
    if tf.io.gfile.exists(os.path.join(config.model_dir, "config.json")):
        raise ValueError(
            f"model_dir {config.model_dir!r} holds a training run; convert into another "
            "--model_dir. Nothing was overwritten."
        )
    model, classifier = models.from_reference_checkpoint(
        config.checkpoint,
        input_shape=(config.image_size, config.image_size, 3),
        ft_proj_selector=config.ft_proj_selector,
        classifier=True,
    )
    tf.io.gfile.makedirs(config.model_dir)
    written = {"model": model, "encoder": model.encoder, "classifier": classifier}
    for name, keras_model in written.items():
        if keras_model is not None:
            files.save_atomic(keras_model, os.path.join(config.model_dir, f"{name}.keras"))
    record = dict(
        checkpoint=config.checkpoint,
        encoder=model.encoder.name,
        feature_dim=int(model.encoder.output_shape[-1]),
        projection_head_layers=_dense_layers(model.projection_head),
        classifier_classes=None if classifier is None else int(classifier.output_shape[-1]),
        # The classifier's dense layers past the encoder: the head's, then its own.
        classifier_reads_head_layer=None if classifier is None else _dense_layers(classifier) - 1,
        files=sorted(f"{name}.keras" for name, m in written.items() if m is not None),
    )
    reads = record["classifier_reads_head_layer"]
    classified = (
        ", no classifier" if classifier is None
        else f", a classifier of {record['classifier_classes']} classes on "
        + (f"head layer {reads}" if reads else "h")
    )
    print(
        f"Converted {config.checkpoint}: {model.encoder.name} (h of {record['feature_dim']}), "
        f"a {record['projection_head_layers']}-layer projection head{classified}; wrote "
        f"{', '.join(record['files'])} to {config.model_dir}",
        flush=True,
    )
    differences = {}
    if saved_model:
        differences = models.verify_saved_model(saved_model, model, classifier, seed=config.seed)
        record["verify"] = differences
        for name, difference in differences.items():
            print(
                f"verify {name}: largest difference from the SavedModel "
                f"{difference['max_abs_difference']:.3g} "
                f"({difference['relative_difference']:.3g} of its largest value)",
                flush=True,
            )
    files.write_atomic(os.path.join(config.model_dir, "conversion.json"), json.dumps(record, indent=2))
    return differences


def _from_checkpoint(config):
    """The official encoder and head for --mode=eval --checkpoint, after the checks.

    Returns the encoder, the head, and `config` with `num_proj_layers` set to the
    head's, so fine-tuning starts from its first layer when it has one.
    """
    plan_ = plan(config)
    if plan_.channels != 3:
        raise ValueError(
            f"The official weights take RGB images; {config.dataset!r} has "
            f"{plan_.channels} channel(s). Evaluate them on an RGB data set."
        )
    _check_evaluation_inputs(config, plan_, encoder_file=False)
    model = models.from_reference_checkpoint(
        config.checkpoint, input_shape=(plan_.image_size, plan_.image_size, 3)
    )
    return (
        model.encoder,
        model.projection_head,
        dataclasses.replace(config, num_proj_layers=_dense_layers(model.projection_head)),
    )


def _dense_layers(model):
    """The number of dense layers in `model` and the models nested in it."""
    return sum(
        _dense_layers(layer) if isinstance(layer, keras.Model)
        else isinstance(layer, keras.layers.Dense)
        for layer in model.layers
    )


def run(config):
    """Runs `config.mode`: train, eval, train_then_eval or convert. Returns the
    results (convert: the verification's differences)."""
    if config.mode == "convert":
        return convert(config)
    encoder = projection_head = None
    if config.checkpoint:
        encoder, projection_head, config = _from_checkpoint(config)
    if config.mode in ("train", "train_then_eval"):
        model, _ = pretrain(config)
        encoder, projection_head = model.encoder, model.projection_head
    results = []
    if config.mode in ("eval", "train_then_eval"):
        results = evaluate(config, encoder, projection_head)
        print(evaluation.format_table(results), flush=True)
        _pictures(config, encoder)
    return results


def _pictures(config, encoder):
    """Training curves and a 2-D embedding of the test set, as PNGs in model_dir."""
    curves = os.path.join(config.model_dir, "history.csv")
    try:
        if tf.io.gfile.exists(curves):
            visualization.plot_training_curves(curves, os.path.join(config.model_dir, "curves.png"))
        if encoder is None:
            encoder = keras.models.load_model(os.path.join(config.model_dir, "encoder.keras"))
        test, preprocess = evaluation_data(config, plan(config), config.eval_split)
        visualization.plot_embedding(
            encoder, test, os.path.join(config.model_dir, "embedding.png"),
            preprocess=preprocess, method="pca", class_names=plan(config).info.class_names,
        )
    except ImportError as error:
        log.warning("No pictures: %s", error)
