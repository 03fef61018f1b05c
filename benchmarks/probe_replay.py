"""Ranks online-probe recipes in minutes by replaying a finished run's encoder.

The online probe reads `stop_gradient(h)`: how it learns never changes the encoder.
So one pretraining run with a checkpoint every few steps (`simclr --mode=train
--checkpoint_steps=15 --keep_checkpoint_max=100`) holds everything a probe saw: this
script restores each checkpoint in turn, encodes the clean training images that the
steps up to the next checkpoint would give the probe (each epoch a fresh shuffle,
the last partial batch dropped, as the job's pipeline does), and then trains any
number of probe recipes on those encodings alone, which takes seconds each. Every
recipe is scored at each epoch's end (the checkpoint of that step must be kept) on the
clean evaluation-split images, as the job's `val_probe_accuracy` is, and the run's
final encoder gets the linear evaluation the probe is measured against.

The replay is exact up to the checkpoint spacing: between two checkpoints the probe
reads the earlier one's encoder instead of one a few steps newer (before the first
checkpoint, the encoder as the run's seed initialises it). Its `default` recipe (the
job's probe: Adam on the encoder's warm-up and cosine schedule at
`--probe_learning_rate`) shows how close the replay comes to the run's own curve.

A recipe is `name:key=value,...` (keys, all optional):
    optimizer  adam (default), adamw or sgd (momentum 0.9, Nesterov)
    lr         peak learning rate (default: the run's --probe_learning_rate)
    schedule   cosine (the encoder's warm-up and cosine decay; default) or constant
               (the same warm-up, then flat)
    wd         weight decay of adamw (default 1e-4)
    ema        scores an exponential moving average of the probe's dense weights with
               this momentum (0: off, the default; e.g. 0.99)
    steps      optimizer steps on each batch (default 1; the schedule stretches to match)

Usage:

    python benchmarks/probe_replay.py --model_dir=DIR [--output=replay.json]
        [--encodings=DIR.npz] [--seed=0] [--recipes default ema99:ema=0.99 ...]
"""

import argparse
import json
import os
import sys
import time

DEFAULT_RECIPES = ("default",)
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")
_KEYS = {
    "optimizer": str,
    "lr": float,
    "schedule": str,
    "wd": float,
    "ema": float,
    "steps": int,
}


def parse_recipe(text):
    """`name:key=value,...` -> `(name, settings)`, refusing anything unknown."""
    name, _, spec = text.partition(":")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise argparse.ArgumentTypeError(
            f"recipe {text!r} needs a name of letters, digits, '-' or '_' before ':'"
        )
    settings = {}
    for item in filter(None, spec.split(",")):
        key, equals, value = item.partition("=")
        if key not in _KEYS or not equals:
            raise argparse.ArgumentTypeError(
                f"recipe {text!r}: {item!r} is not key=value with a key among "
                f"{sorted(_KEYS)}"
            )
        try:
            settings[key] = _KEYS[key](value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"recipe {text!r}: {key} must be a {_KEYS[key].__name__}, not {value!r}"
            ) from None
    _check_settings(text, settings)
    return name, settings


def _check_settings(text, settings):
    checks = (
        ("optimizer", lambda v: v in OPTIMIZERS, f"one of {list(OPTIMIZERS)}"),
        ("schedule", lambda v: v in SCHEDULES, f"one of {list(SCHEDULES)}"),
        ("lr", lambda v: v > 0, "positive"),
        ("wd", lambda v: v >= 0, "at least 0"),
        ("ema", lambda v: 0 <= v < 1, "in [0, 1)"),
        ("steps", lambda v: v >= 1, "at least 1"),
    )
    for key, valid, wanted in checks:
        if key in settings and not valid(settings[key]):
            raise argparse.ArgumentTypeError(
                f"recipe {text!r}: {key} must be {wanted}, not {settings[key]!r}"
            )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model_dir", required=True,
        help="A finished `simclr` run with step checkpoints (config.json, checkpoints/).",
    )
    parser.add_argument(
        "--recipes", nargs="+", type=parse_recipe, default=None,
        help="Probe recipes to replay, name:key=value,... (default: the job's probe).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the replay's shuffles.")
    parser.add_argument("--output", default=None, help="Write the results here as JSON.")
    parser.add_argument(
        "--encodings", default=None,
        help="An .npz that keeps the replay's encodings: read when it exists (for this "
        "--model_dir and --seed), written otherwise, so that more recipes skip the encoding.",
    )
    args = parser.parse_args(argv)
    if args.recipes is None:
        args.recipes = [parse_recipe(text) for text in DEFAULT_RECIPES]
    names = [name for name, _ in args.recipes]
    if len(set(names)) != len(names):
        parser.error(f"--recipes: each recipe needs its own name; got {names}")
    return args


def checkpoint_steps(model_dir):
    """The kept checkpoints of a run: {step: path}, or a clear error."""
    import tensorflow as tf

    directory = os.path.join(model_dir, "checkpoints")
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        raise ValueError(
            f"{model_dir!r} holds no TensorFlow checkpoints under checkpoints/: replay a "
            "run of `simclr --mode=train --checkpoint_steps=15 --keep_checkpoint_max=100`."
        )
    return {int(path.rsplit("-", 1)[-1]): path for path in state.all_model_checkpoint_paths}


def read_config(model_dir):
    from keras_simclr import runner

    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        raise ValueError(f"{model_dir!r} has no config.json: it is not a `simclr` run's model_dir.")
    with open(path) as f:
        return runner.Config(**json.load(f))


def check_coverage(steps, total_steps, steps_per_epoch, model_dir):
    """The run must be finished, and every epoch's end and its first checkpoint kept."""
    wanted = [e * steps_per_epoch for e in range(1, total_steps // steps_per_epoch + 1)]
    if total_steps not in wanted:
        wanted.append(total_steps)
    missing = [step for step in wanted if step not in steps]
    if missing:
        raise ValueError(
            f"{model_dir!r} lacks the checkpoints of steps {missing} (kept: "
            f"{sorted(steps)}): the replay scores the probe at each epoch's end. Rerun "
            "with a --checkpoint_steps that divides the steps per epoch "
            f"({steps_per_epoch}) and --keep_checkpoint_max of at least "
            f"{total_steps // max(1, min(steps)) + 1}."
        )
    return wanted


def _batch_order(num_examples, batch_size, total_steps, seed):
    """The example indices of each step's batch: a fresh shuffle per epoch."""
    import numpy as np

    rng = np.random.default_rng(seed)
    per_epoch = num_examples // batch_size
    order = []
    while len(order) < total_steps:
        permutation = rng.permutation(num_examples)
        order += [
            permutation[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch)
        ]
    return np.stack(order[:total_steps])


def _arrays(dataset):
    import numpy as np

    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    return np.concatenate(images), np.concatenate(labels)


def encode_replay(config, model_dir, seed):
    """The probe's inputs: h of every step's batch and of the evaluation images at
    each epoch's end, with the run's final encoder for the linear evaluation."""
    import keras
    import numpy as np

    from keras_simclr import evaluation
    from keras_simclr import runner

    plan_ = runner.plan(config)
    total, per_epoch = plan_.total_steps, plan_.steps_per_epoch
    steps = checkpoint_steps(model_dir)
    epoch_ends = check_coverage(steps, total, per_epoch, model_dir)

    keras.mixed_precision.set_global_policy(runner.mixed_precision_policy(config.mixed_precision))
    keras.utils.set_random_seed(config.seed)  # the run's initial weights
    model = runner.build_model(config, plan_)
    model.compile(
        optimizer=runner.build_optimizer(config, plan_),
        probe_optimizer=runner.build_probe_optimizer(config, plan_),
    )
    model.build_optimizers()
    _, restore = runner._checkpoint_manager(config, model)

    train_set, preprocess = runner.evaluation_data(config, plan_, config.train_split)
    eval_set, _ = runner.evaluation_data(config, plan_, config.eval_split)
    train_images, train_labels = _arrays(train_set)
    eval_images, eval_labels = _arrays(eval_set)
    order = _batch_order(len(train_images), config.train_batch_size, total, seed)

    def encode(images):
        h, _ = evaluation.extract_features(
            model.encoder, (images, np.zeros(len(images), "int64")), preprocess,
            batch_size=config.eval_batch_size,
        )
        return h

    starts = sorted({0} | {s for s in steps if s < total})
    h_steps, h_eval = [], {}
    for i, start in enumerate(starts):
        if start:
            restore(steps[start])
        end = starts[i + 1] if i + 1 < len(starts) else total
        chosen = order[start:end]
        h = encode(train_images[chosen.reshape(-1)])
        h_steps.append(h.reshape(len(chosen), chosen.shape[1], -1))
        if start in epoch_ends:
            h_eval[start] = encode(eval_images)
    restore(steps[total])
    h_eval[total] = encode(eval_images)
    h_train_final = encode(train_images)
    linear = evaluation.linear_eval(
        None, (h_train_final, train_labels), (h_eval[total], eval_labels),
        dataset_name=config.dataset,
    )
    return {
        "h_steps": np.concatenate(h_steps),
        "labels_steps": train_labels[order],
        "h_eval": {step: h_eval[step] for step in epoch_ends},
        "eval_labels": eval_labels,
        "linear": 100 * linear.accuracy,
        "num_classes": plan_.info.num_classes,
        "plan": plan_,
    }


def save_encodings(replayed, path, model_dir, seed):
    import numpy as np

    steps = sorted(replayed["h_eval"])
    np.savez(
        path, h_steps=replayed["h_steps"], labels_steps=replayed["labels_steps"],
        eval_steps=np.array(steps), eval_labels=replayed["eval_labels"],
        linear=replayed["linear"], num_classes=replayed["num_classes"],
        model_dir=os.path.abspath(model_dir), seed=seed,
        **{f"h_eval_{step}": replayed["h_eval"][step] for step in steps},
    )


def load_encodings(path, config, model_dir, seed):
    """The encodings `save_encodings` kept, refused when they are another run's."""
    import numpy as np

    from keras_simclr import runner

    kept = np.load(path)
    if str(kept["model_dir"]) != os.path.abspath(model_dir) or int(kept["seed"]) != seed:
        raise ValueError(
            f"--encodings={path!r} holds the replay of {str(kept['model_dir'])!r} at seed "
            f"{int(kept['seed'])}, not of {os.path.abspath(model_dir)!r} at seed {seed}: "
            "name another file (it is written on first use)."
        )
    return {
        "h_steps": kept["h_steps"],
        "labels_steps": kept["labels_steps"],
        "h_eval": {int(step): kept[f"h_eval_{step}"] for step in kept["eval_steps"]},
        "eval_labels": kept["eval_labels"],
        "linear": float(kept["linear"]),
        "num_classes": int(kept["num_classes"]),
        "plan": runner.plan(config),
    }


def replay(replayed, settings, config, seed=0):
    """Trains one probe recipe on the replayed encodings: accuracy (%) at each epoch end."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_simclr import models
    from keras_simclr import optimizers

    plan_ = replayed["plan"]
    repeats = settings.get("steps", 1)
    peak = settings.get("lr", config.probe_learning_rate)
    warmup, total = plan_.warmup_steps * repeats, plan_.total_steps * repeats
    if settings.get("schedule", "cosine") == "cosine":
        schedule = optimizers.WarmupCosineDecay(peak, warmup, total)
    else:
        schedule = optimizers.WarmupCosineDecay(peak, warmup, 10**12)
    kind = settings.get("optimizer", "adam")
    if kind == "adam":
        optimizer = keras.optimizers.Adam(schedule)
    elif kind == "adamw":
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=settings.get("wd", 1e-4))
    else:
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)

    keras.utils.set_random_seed(seed)
    h_steps, labels = replayed["h_steps"], replayed["labels_steps"]
    probe = models.linear_probe(h_steps.shape[-1], replayed["num_classes"], use_bn=True)
    dense = list(probe.trainable_variables)
    momentum = settings.get("ema", 0.0)
    averages = [tf.Variable(v.value) for v in dense]
    optimizer.build(dense)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(h, y):
        for _ in range(repeats):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, probe(h, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, dense), dense))
        for average, variable in zip(averages, dense):
            average.assign(momentum * average + (1 - momentum) * variable)

    def accuracy(h, y):
        kept = [v.numpy() for v in dense]
        if momentum:
            for variable, average in zip(dense, averages):
                variable.assign(average)
        logits = probe(h, training=False).numpy()
        for variable, value in zip(dense, kept):
            variable.assign(value)
        return float(100 * np.mean(np.argmax(logits, -1) == y))

    curve = []
    for t in range(len(h_steps)):
        step(h_steps[t], labels[t])
        if t + 1 in replayed["h_eval"]:
            curve.append(accuracy(replayed["h_eval"][t + 1], replayed["eval_labels"]))
    return curve


def run_history(model_dir):
    """The run's own `val_probe_accuracy` at each epoch's end (%), if it logged one."""
    import csv

    path = os.path.join(model_dir, "history.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = [row for row in csv.DictReader(f) if row.get("val_probe_accuracy")]
    return [100 * float(row["val_probe_accuracy"]) for row in rows] or None


def main(argv=None):
    args = parse_args(argv)
    config = read_config(args.model_dir)
    start = time.perf_counter()
    if args.encodings and os.path.exists(args.encodings):
        replayed = load_encodings(args.encodings, config, args.model_dir, args.seed)
    else:
        replayed = encode_replay(config, args.model_dir, args.seed)
        if args.encodings:
            save_encodings(replayed, args.encodings, args.model_dir, args.seed)
    encoded = time.perf_counter() - start
    own = run_history(args.model_dir)
    print(f"# {args.model_dir}: {len(replayed['h_steps'])} steps replayed from its "
          f"checkpoints (or --encodings) in {encoded:.0f} s; linear evaluation {replayed['linear']:.2f}%")
    if own:
        print(f"# the run's own probe at each epoch's end: {' / '.join(f'{a:.2f}' for a in own)}")
    print("| recipe | settings | probe at each epoch's end % | gap to linear (points) | s |")
    print("| --- | --- | --- | ---: | ---: |")
    rows = []
    for name, settings in args.recipes:
        began = time.perf_counter()
        curve = replay(replayed, settings, config, args.seed)
        seconds = time.perf_counter() - began
        gap = replayed["linear"] - curve[-1]
        described = ",".join(f"{k}={v}" for k, v in settings.items()) or "the job's probe"
        print(f"| {name} | {described} | {' / '.join(f'{a:.2f}' for a in curve)} | "
              f"{gap:.2f} | {seconds:.0f} |", flush=True)
        rows.append(dict(name=name, settings=settings, curve=curve, gap=gap, seconds=seconds))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(
                dict(model_dir=args.model_dir, linear=replayed["linear"], run_probe=own,
                     encode_seconds=encoded, seed=args.seed, recipes=rows),
                f, indent=2,
            )


if __name__ == "__main__":
    sys.exit(main())
