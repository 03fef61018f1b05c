"""The whole job: pretrain SimCLR, then evaluate the representation; resumable.

The command line (`keras_simclr.cli`) turns flags into a `Config` and calls `run`;
a user script can do the same without flags. This module builds the model from its
registries and trains it; `keras_simclr.planning` derives sizes and steps,
`keras_simclr.evaluation_job` evaluates the encoder and
`keras_simclr.official_weights` converts or evaluates the released weights.
"""

import contextlib
import inspect
import json
import logging
import os
import sys
import time

import keras
import tensorflow as tf

from keras_simclr import augment
from keras_simclr import backends
from keras_simclr import checkpoints
from keras_simclr import config as config_lib
from keras_simclr import data
from keras_simclr import distribute
from keras_simclr import evaluation
from keras_simclr import files
from keras_simclr import models
from keras_simclr import optimizers
from keras_simclr.evaluation_job import check_evaluation_inputs
from keras_simclr.evaluation_job import clean_image_preprocess
from keras_simclr.evaluation_job import evaluate
from keras_simclr.evaluation_job import evaluation_data
from keras_simclr.evaluation_job import write_pictures
from keras_simclr.official_weights import convert
from keras_simclr.official_weights import official_encoder
from keras_simclr.planning import plan

# Public as `runner.<name>` since the job was one module; they live with their idea.
from keras_simclr.evaluation_job import finetune_epochs  # noqa: F401
from keras_simclr.evaluation_job import ft_proj_selector  # noqa: F401
from keras_simclr.planning import Plan  # noqa: F401

log = logging.getLogger("keras_simclr")

# The configuration lives in `keras_simclr.config`; `runner.Config` is the same class.
Config = config_lib.Config

# Where a run records what its model is, to refuse resuming it with another.
ARCHITECTURE_FILE = "architecture.json"
# Keys of an encoder's configuration that say how it runs, not what its variables
# are: a run may resume with other values of these (global batch norm, precision).
_RUN_SETTINGS = ("name", "trainable", "dtype", "synchronized_bn")


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
        stem_stride=config.stem_stride,
        sk_ratio=config.sk_ratio,
        synchronized_bn=config.global_bn,
        name="encoder",
    )


def _simclr(config, plan_, encoder):
    head = models.projection_head(
        encoder.output_shape[-1],
        num_layers=config.num_proj_layers,
        hidden_dim=config.proj_hidden_dim,
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
        probe_on=config.probe_on,
        probe_average=config.probe_average,
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
    True)`), so one learning rate suits every run. Trained on the clean images
    during the main job's 3 epochs (validation split), it ended at 80.5% at a peak
    of 1e-2, 82.2% at 3e-2, 83.1% at 1e-1 (3.7 points below the linear
    evaluation) and 81.8% at 3e-1: it chases an encoder that moves, and the
    cosine decay lets it settle at the end. With `probe_average` (the default,
    0.98) the rate stays at its peak after the warm-up, so that the probe keeps
    up with the encoder, and the model scores the moving average of its weights,
    which settles it instead: 1.9 points closer to the linear evaluation (1.9
    against 3.8 points below it) in three replays of the main job on the
    validation split (`benchmarks/probe_replay.py`, docs/quality_study.md).
    Neither choice touches the encoder (the probe reads stop_gradient(h)).
    """
    if not config.lineareval_while_pretraining or config.probe_optimizer == "shared":
        return None
    return keras.optimizers.Adam(
        optimizers.WarmupCosineDecay(
            config.probe_learning_rate, plan_.warmup_steps, plan_.total_steps,
            alpha=1.0 if config.probe_average else 0.0,
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
    """Saves a checkpoint every N steps and/or epochs.

    Either kind of checkpoint (`tf.train.Checkpoint` on TensorFlow, the `.npz` of
    `keras_simclr.checkpoints` on JAX) is written under temporary names and
    published by an index file renamed into place, so a run killed mid-save
    resumes from the previous complete checkpoint.
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
    With `validation`, the row of an epoch's last step also holds the `val_`
    metrics of the evaluation at the epoch's end (empty in the other rows).
    A resumed run appends; `visualization.plot_training_curves` keeps the last row of
    a repeated step.
    """

    def __init__(self, path, every, steps_per_epoch, validation=False):
        super().__init__()
        self.path = path
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.validation = validation
        self._last = None
        self._pending = None

    def on_epoch_begin(self, epoch, logs=None):
        self._last = (0, {})
        self._pending = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        last_of_epoch = batch + 1 == self.params.get("steps")
        if step % self.every and not last_of_epoch:
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
        if self.validation and last_of_epoch:
            self._pending = (step, window)  # written with the epoch's validation
            return
        self._write(step, window)

    def on_epoch_end(self, epoch, logs=None):
        if self._pending is None:
            return
        step, window = self._pending
        self._pending = None
        validation = {
            key: float(value)
            for key, value in (logs or {}).items()
            if key.startswith("val_") and key[len("val_"):] in window
        }
        self._write(step, window, validation)

    def _write(self, step, window, validation=None):
        names = sorted(window)
        columns = names + [f"val_{name}" for name in names] if self.validation else names
        values = {**window, **(validation or {})}
        new_file = not tf.io.gfile.exists(self.path)
        with tf.io.gfile.GFile(self.path, "a") as f:
            if new_file:
                f.write(",".join(["step", "epoch", *columns]) + "\n")
            row = [str(step), f"{step / self.steps_per_epoch:.4f}"]
            row += [f"{values[name]:.6g}" if name in values else "" for name in columns]
            f.write(",".join(row) + "\n")


def architecture(model):
    """What `model` is, as it describes itself: the record a run keeps in model_dir.

    The method's registered class, the encoder's class and configuration (a
    `keras_simclr.models.ResNet`'s is its constructor arguments: depth, width,
    stem, selective kernels, input shape) and the shape of every variable, the
    projection head's and the probe's included. Two models with the same record
    can continue each other's checkpoints.

    Args:
        model: the model that trains (a `keras_simclr.models.SelfSupervisedModel`).

    Returns:
        A dict of JSON values.
    """
    encoder = keras.saving.serialize_keras_object(model.encoder)
    record = {
        "method": keras.saving.get_registered_name(type(model)),
        "encoder": encoder.get("registered_name") or encoder["class_name"],
        "encoder_config": {
            key: value for key, value in encoder["config"].items() if key not in _RUN_SETTINGS
        },
        "variable_shapes": [list(variable.shape) for variable in model.weights],
    }
    # As the file will hold it (tuples become lists), so records compare equal.
    return json.loads(json.dumps(record))


def _checkpoint_manager(config, model):
    """The run's checkpoint manager and the function restoring one of its checkpoints.

    `tf.train.Checkpoint` on TensorFlow; on JAX, whose variables TensorFlow cannot
    track, `keras_simclr.checkpoints.ArrayCheckpointManager`. A model_dir holds one
    kind: resuming it on the other backend is refused, never started afresh.
    """
    directory = os.path.join(config.model_dir, "checkpoints")
    tracked = dict(model=model, optimizer=model.optimizer)
    if model.probe_optimizer is not None:
        tracked["probe_optimizer"] = model.probe_optimizer
    on_tensorflow = keras.backend.backend() == "tensorflow"
    other = (
        tf.io.gfile.exists(os.path.join(directory, checkpoints.INDEX))
        if on_tensorflow
        else tf.train.latest_checkpoint(directory) is not None
    )
    if other:
        written, now = ("JAX", "tensorflow") if on_tensorflow else ("TensorFlow", "jax")
        raise ValueError(
            f"model_dir {config.model_dir!r} holds checkpoints written on Keras' "
            f"{written} backend, which this backend ({now}) cannot resume. Resume it "
            f"with --backend={'jax' if on_tensorflow else 'tensorflow'}, or use another "
            "--model_dir; nothing was overwritten."
        )
    if on_tensorflow:
        checkpoint = tf.train.Checkpoint(**tracked)
        manager = tf.train.CheckpointManager(
            checkpoint, directory, max_to_keep=config.keep_checkpoint_max
        )
        return manager, lambda path: checkpoint.restore(path).assert_existing_objects_matched()
    manager = checkpoints.ArrayCheckpointManager(
        tracked, directory, max_to_keep=config.keep_checkpoint_max
    )
    return manager, manager.restore


def _check_model_dir(config, model):
    """Refuses a model_dir that holds a run of another architecture than `model`'s.

    Runs written before the record existed have none; restoring their checkpoint
    still refuses variables of other shapes.
    """
    path = os.path.join(config.model_dir, ARCHITECTURE_FILE)
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        previous = json.load(f)
    current = architecture(model)
    # An encoder argument added since the run was written (stem_stride) has its
    # default there.
    recorded = previous.setdefault("encoder_config", {})
    for name, parameter in inspect.signature(type(model.encoder).__init__).parameters.items():
        if (
            name in current["encoder_config"]
            and name not in recorded
            and parameter.default is not inspect.Parameter.empty
        ):
            recorded[name] = parameter.default
    if previous == current:
        return
    different = [
        f"{key}: {previous.get(key)!r} there, {current[key]!r} now"
        for key in ("method", "encoder")
        if previous.get(key) != current[key]
    ]
    before, now = previous.get("encoder_config", {}), current["encoder_config"]
    different += [
        f"encoder {key}: {before.get(key)!r} there, {now.get(key)!r} now"
        for key in sorted(set(before) | set(now))
        if before.get(key) != now.get(key)
    ]
    if not different:
        shapes = previous.get("variable_shapes", [])
        changed = [
            f"{variable.path} {old} there, {list(variable.shape)} now"
            for variable, old in zip(model.weights, shapes)
            if old != list(variable.shape)
        ]
        different = changed[:3] or [
            f"{len(shapes)} variables there, {len(model.weights)} now (the projection "
            "head's layers or the online probe)"
        ]
    raise ValueError(
        f"model_dir {config.model_dir!r} holds a run of a different architecture "
        f"({'; '.join(different)}). Use another --model_dir, or the same settings to "
        "resume it; nothing was overwritten."
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


class _JaxDevices:
    """What the job asks of a strategy, on Keras' JAX backend: a scope to build the
    model in and the number of parts of each global batch.

    `tf.distribute` has no part there: with a `keras.distribution.DataParallel`
    set, Keras' JAX trainer splits every global batch over the devices and XLA
    adds the collectives.
    """

    def __init__(self, distribution):
        self.distribution = distribution
        self.num_replicas_in_sync = distribute.num_batch_shards()
        self.name = "DataParallel" if distribution is not None else "one JAX device"

    def scope(self):
        return contextlib.nullcontext()


def _jax_devices(config):
    if config.strategy not in ("auto", "one_device"):
        raise ValueError(
            f"--strategy={config.strategy} is a tf.distribute strategy, which Keras' "
            "JAX backend does not use. On JAX use --strategy=auto (data-parallel "
            "over every local device, keras.distribution.DataParallel) or "
            "--strategy=one_device, or run the job with --backend=tensorflow."
        )
    if config.cpu_devices:
        raise ValueError(
            "--cpu_devices splits the CPU into TensorFlow's logical devices. On JAX "
            "set XLA_FLAGS=--xla_force_host_platform_device_count=N before the job "
            "starts; --strategy=auto then spreads every batch over the N devices."
        )
    distribution = distribute.data_parallel() if config.strategy == "auto" else None
    return _JaxDevices(distribution)


def resolve_strategy(config):
    """The strategy of `config`; `cpu_devices` mirrors over that many CPU devices.

    On Keras' JAX backend, an object with the strategy's `scope()` and
    `num_replicas_in_sync`: `--strategy=auto` sets a `keras.distribution.
    DataParallel` over the local devices when there are several.
    """
    if backends.select(config.backend) == "jax":
        return _jax_devices(config)
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
        check_evaluation_inputs(config, plan_, encoder_file=False)
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
            # JAX runs uncompiled steps op by op: there the step is always compiled.
            jit_compile=config.jit_compile or keras.backend.backend() == "jax",
        )
        model.build_optimizers()
    _check_model_dir(config, model)
    manager, restore = _checkpoint_manager(config, model)
    if manager.latest_checkpoint:
        try:
            restore(manager.latest_checkpoint)
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise ValueError(
                f"The checkpoint {manager.latest_checkpoint!r} does not match this "
                f"model ({error}). Use another --model_dir; nothing was overwritten."
            ) from None
    files.write_atomic(os.path.join(config.model_dir, "config.json"), config.to_json())
    files.write_atomic(
        os.path.join(config.model_dir, ARCHITECTURE_FILE),
        json.dumps(architecture(model), indent=2),
    )
    start = int(model.optimizer.iterations.numpy())
    print(
        f"Pretraining on {config.dataset!r} on {replicas} replica{'s' if replicas > 1 else ''} "
        f"({getattr(strategy, 'name', type(strategy).__name__)}): {plan_.total_steps} steps of global batch "
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
    full_resolution = plan_.sizes_differ and not config.augment_in_model
    source = data.load(
        config.dataset, config.train_split, data_dir=config.data_dir,
        image_size=None if full_resolution else plan_.image_size,
    )
    host_augment = None if config.augment_in_model else build_augmenter(config, plan_)
    validation = _probe_validation_data(config, plan_)
    # A probe on clean images: the model's augmenter input, or the pipeline's copy
    # of each batch's images, prepared as the evaluation reads them.
    probe_images = False
    if config.lineareval_while_pretraining and config.probe_on == "images" and host_augment is not None:
        preprocess = clean_image_preprocess(plan_)
        probe_images = True if preprocess is None else preprocess
    callbacks = [
        _Checkpointer(manager, config.checkpoint_steps, config.checkpoint_epochs),
        keras.callbacks.TensorBoard(
            os.path.join(config.model_dir, "logs"), update_freq=config.log_every_steps
        ),
        _StepLogger(
            os.path.join(config.model_dir, "history.csv"),
            config.log_every_steps,
            plan_.steps_per_epoch,
            validation=validation is not None,
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
            probe_images=probe_images,
        )
        dataset = (
            data.distributed_pretraining_dataset(
                strategy, source, config.train_batch_size, **options
            )
            if replicas > 1 and distribute.uses_tf_distribute()
            # On JAX, Keras splits each global batch over the devices.
            else data.pretraining_dataset(source, config.train_batch_size, **options)
        )
        result = model.fit(
            dataset,
            initial_epoch=initial_epoch,
            epochs=epochs,
            steps_per_epoch=steps,
            callbacks=callbacks,
            validation_data=validation,
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


def _probe_validation_data(config, plan_):
    """The clean, labelled `eval_split` images that score the online probe each epoch.

    On training views the probe reads h of augmented crops, which ends several
    points below the linear evaluation of clean images; scored at the end of every
    epoch on the evaluation images (`val_probe_accuracy`), it is the signal to
    watch. `None` without a probe, or when the evaluation split has no labels
    (said once: the probe is then scored on the training views only).
    """
    if not config.lineareval_while_pretraining:
        return None
    if config.mode != "train_then_eval":  # train_then_eval checked the split already
        try:
            info = data.info(config.dataset, config.eval_split, data_dir=config.data_dir)
        except ValueError:
            info = None
        if info is None or info.num_classes is None or not info.num_examples:
            print(
                f"The online probe is scored on the training views only: "
                f"--eval_split={config.eval_split!r} of {config.dataset!r} has no "
                "labelled examples to score it on.",
                flush=True,
            )
            return None
    dataset, preprocess = evaluation_data(config, plan_, config.eval_split)
    if preprocess is not None:
        dataset = dataset.map(
            lambda images, labels: (preprocess(images), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset


def run(config):
    """Runs `config.mode`: train, eval, train_then_eval or convert. Returns the
    results (convert: the verification's differences)."""
    if config.mode == "convert":
        return convert(config)
    encoder = projection_head = None
    if config.checkpoint:
        encoder, projection_head, config = official_encoder(config)
    if config.mode in ("train", "train_then_eval"):
        model, _ = pretrain(config)
        encoder, projection_head = model.encoder, model.projection_head
    results = []
    if config.mode in ("eval", "train_then_eval"):
        results = evaluate(config, encoder, projection_head)
        print(evaluation.format_table(results), flush=True)
        write_pictures(config, encoder)
    return results
