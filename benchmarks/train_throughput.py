"""Training throughput of SimCLR on CPU: images/s, peak memory, FLOP/s vs the matmul peak.

Prints, for the configurations of issue 6, the training images/s (every image goes
through the encoder and head as two views, so a step of batch 256 encodes 512 views),
the peak resident memory, the model FLOPs and the achieved model FLOP/s as a fraction
of this machine's float32 matmul peak, measured in the same run:

- ResNet-18 (CIFAR stem) at 32x32, batch 256: float32 and `mixed_bfloat16`, with and
  without `jit_compile`;
- ResNet-50 at 224x224, batch 32: float32 with and without `jit_compile`;
- the overhead of the library: `SimCLR.fit()` on pre-made views against a bare,
  hand-written `tf.GradientTape` step on the same encoder and head (same loss, same
  LARS optimizer), timed in alternating rounds in one process.

How the figures are made:

- Model FLOPs: 2 per multiply-add of the convolution and dense layers, forward, per
  view (`_measure.forward_flops`). Training is counted as 3x the forward pass (the
  backward pass computes gradients for the inputs and for the weights, each about a
  forward pass), so model FLOP/s = images/s x 2 views x 3 x forward FLOPs.
- images/s: the median over alternating rounds of `steps` timed steps each, after
  the step is traced and warmed up. `fit()` is timed from the end of its first step
  to the end of its last, which leaves out `fit()`'s set-up and the time an input
  pipeline needs to fill its buffers when a new iterator starts.
- Peak memory: the resident set size high-water mark of a fresh process running
  one configuration, read after its first (untimed) run (the model, optimizer slots,
  data and traced step included).
- The matmul peak: the best of several square float32 (and bfloat16) matmuls
  (4096 x 4096; 2048 with `--quick`), measured at the start and the end of the run;
  fractions use the higher of the two float32 figures.

Usage:

    python benchmarks/train_throughput.py            # the configurations above
    python benchmarks/train_throughput.py --quick    # small widths and batches, CI

`--quick` keeps the table's rows but shrinks the models (width 1/4, ResNet-50 at
64 px) and the batches, so its fractions of the peak say little about the full
configurations.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402

SCRIPT = os.path.abspath(__file__)

# The paper's CIFAR-10 temperature; it does not change the cost of a step.
_TEMPERATURE = 0.5


def baseline_config(quick):
    """ResNet-18 at 32 px, float32, graph mode: the configuration every ratio uses.

    One process times three runs of it in alternating rounds: `fit` (SimCLR.fit on
    pre-made views), `fit_augment` (SimCLR.fit on `data.pretraining_dataset` with
    `SimCLRAugment` in tf.data) and `bare` (a hand-written step on pre-made views).
    """
    config = _config(18, 32, 256, quick)
    # More, shorter rounds: the ratios between these runs are the point.
    config.update(modes=["fit", "fit_augment", "bare"], steps=2, rounds=1 if quick else 4)
    return config


def configurations(quick):
    """The children this script runs: label -> config (the baseline first)."""
    return {
        "resnet18": baseline_config(quick),
        "resnet18_bf16": _config(18, 32, 256, quick, policy="mixed_bfloat16"),
        "resnet18_xla": _config(18, 32, 256, quick, jit_compile=True),
        "resnet50": _config(50, 224, 32, quick),
        "resnet50_xla": _config(50, 224, 32, quick, jit_compile=True),
    }


def _config(depth, image_size, batch_size, quick, policy="float32", jit_compile=False):
    if quick:
        image_size = min(image_size, 64)
        batch_size = max(batch_size // 8, 4)
    return {
        "depth": depth,
        "width_multiplier": 0.25 if quick else 1,
        "image_size": image_size,
        "batch_size": batch_size,
        "policy": policy,
        "jit_compile": jit_compile,
        "replicas": 1,
        "modes": ["fit"],
        "steps": 2 if quick else 3,
        "rounds": 1 if quick else 2,
    }


def describe(config):
    """A short human-readable name of a configuration."""
    width = config["width_multiplier"]
    width = f" {width:g}x" if width != 1 else ""
    policy = " bf16" if config["policy"] == "mixed_bfloat16" else " fp32"
    name = (
        f"ResNet-{config['depth']}{width} {config['image_size']}px "
        f"b{config['batch_size']}{policy}"
    )
    if config["jit_compile"]:
        name += " XLA"
    if config["replicas"] > 1:
        name += f" {config['replicas']} replicas"
    return name


# The child: one configuration in a fresh process -------------------------------------


def measure(config):
    """Times one configuration; runs in a child process (see `_measure.run_child`)."""
    replicas = config.get("replicas", 1)
    import tensorflow as tf

    if replicas > 1:
        # Logical devices can only be set up before TensorFlow initialises.
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)],
        )
    import keras
    import numpy as np

    from keras_simclr import data
    from keras_simclr import models
    from keras_simclr import optimizers

    if "bare" in config["modes"] and replicas > 1:
        raise ValueError("The bare step runs on one device only.")
    keras.mixed_precision.set_global_policy(config["policy"])
    keras.utils.set_random_seed(0)
    size, batch_size = config["image_size"], config["batch_size"]
    steps = config["steps"]

    if replicas > 1:
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        strategy = tf.distribute.get_strategy()
    with strategy.scope():
        encoder = models.resnet(
            config["depth"],
            width_multiplier=config["width_multiplier"],
            input_shape=(size, size, 3),
            synchronized_bn=replicas > 1,
        )
        head = models.projection_head(
            encoder.output_shape[-1], synchronized_bn=replicas > 1
        )
        model = models.SimCLR(encoder, head, temperature=_TEMPERATURE)
        model.compile(optimizer=_lars(optimizers, batch_size), jit_compile=config["jit_compile"])

    rng = np.random.default_rng(0)
    views = [rng.uniform(size=(batch_size, size, size, 3)).astype("float32") for _ in range(2)]

    def views_dataset():
        dataset = tf.data.Dataset.from_tensor_slices(tuple(views)).repeat()
        dataset = dataset.batch(batch_size, drop_remainder=True)
        return dataset.map(lambda a, b: ((a, b),)).prefetch(tf.data.AUTOTUNE)

    def augment_dataset():
        from keras_simclr.augment import SimCLRAugment

        # The cost of the augmentation does not depend on what the pixels show.
        images = rng.integers(0, 256, (max(4 * batch_size, 2048), size, size, 3), "uint8")
        augment = SimCLRAugment(size, preset=config.get("augment_preset", "cifar"))
        return data.pretraining_dataset(images, batch_size, augment=augment, labels=False)

    timer = _step_timer(keras)
    last_losses = {}

    def fit_run(dataset):
        def run():
            history = model.fit(
                dataset,
                epochs=1,
                steps_per_epoch=steps + 1,
                shuffle=False,
                verbose=0,
                callbacks=[timer],
            )
            seconds, cpu_seconds = timer.seconds()
            return steps * batch_size, seconds, cpu_seconds, history.history["loss"][-1]

        return run

    runs = {}
    if "fit" in config["modes"]:
        runs["fit"] = fit_run(views_dataset())
    if "fit_augment" in config["modes"]:
        runs["fit_augment"] = fit_run(augment_dataset())
    if "bare" in config["modes"]:
        runs["bare"] = _bare_run(
            tf, optimizers, encoder, head, views, batch_size, steps, config
        )

    # One untimed run per mode traces the step and warms up oneDNN's primitives.
    rss_mib = None
    start = time.perf_counter()
    for run in runs.values():
        run()
        if rss_mib is None:
            rss_mib = _measure.peak_rss_mib()
    warmup_seconds = time.perf_counter() - start

    def recorded(name, run):
        def wrapped():
            *timed, loss = run()
            last_losses[name] = float(loss)
            return tuple(timed)

        return wrapped

    timed = _measure.alternate(
        {name: recorded(name, run) for name, run in runs.items()}, config["rounds"]
    )
    flops = _measure.forward_flops(encoder) + _measure.forward_flops(head)
    return {
        "config": config,
        "modes": timed,
        "losses": last_losses,
        "finite": bool(all(np.isfinite(list(last_losses.values())))),
        "forward_flops_per_view": flops,
        "peak_rss_mib": rss_mib,
        "final_peak_rss_mib": _measure.peak_rss_mib(),
        "warmup_seconds": warmup_seconds,
        "load_average": _measure.load_average(),
    }


def _lars(optimizers, batch_size):
    return optimizers.LARS(
        optimizers.scaled_learning_rate(0.3, batch_size, "linear"), weight_decay=1e-4
    )


def _bare_run(tf, optimizers, encoder, head, views, batch_size, steps, config):
    """A plain GradientTape step on the same networks: what SimCLR.fit should cost."""
    from keras_simclr import losses

    optimizer = _lars(optimizers, batch_size)
    variables = encoder.trainable_variables + head.trainable_variables
    optimizer.build(variables)
    view_1, view_2 = (tf.constant(view) for view in views)

    @tf.function(jit_compile=config["jit_compile"])
    def step(view_1, view_2):
        n = tf.shape(view_1)[0]
        with tf.GradientTape() as tape:
            h = encoder(tf.concat([view_1, view_2], axis=0), training=True)
            z = tf.cast(head(h, training=True), tf.float32)
            loss = losses.nt_xent(z[:n], z[n:], temperature=_TEMPERATURE).loss
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    def run():
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss = step(view_1, view_2)
        loss = float(loss)
        return (
            steps * batch_size,
            time.perf_counter() - start,
            time.process_time() - cpu_start,
            loss,
        )

    return run


def _step_timer(keras):
    class StepTimer(keras.callbacks.Callback):
        """Records when each training step ends."""

        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append((time.perf_counter(), time.process_time()))

        def seconds(self):
            """Wall and CPU seconds from the end of the first step to the last."""
            (first, cpu_first), (last, cpu_last) = self.ends[0], self.ends[-1]
            return last - first, cpu_last - cpu_first

    return StepTimer()


# The parent: run the children, print the table ----------------------------------------


def _timed(result, mode):
    """The timing of `mode` in a child's result, or `None` if the child failed."""
    return None if "error" in result else result["modes"][mode]


def training_row(benchmark, result, mode, run, fp32_peak, ratio="", rss=None):
    """A table row for one mode of a training child (a failed child says so)."""
    config = result["config"]
    if "error" in result:
        return _measure.table_row(
            benchmark, f"{describe(config)}, {run}", ratio=f"failed: {result['error']}"
        )
    timed = result["modes"][mode]
    return _measure.table_row(
        benchmark,
        f"{describe(config)}, {run}",
        rate=timed["rate"],
        rss=result["peak_rss_mib"] if rss is None else rss,
        flops_per_image=2 * 3 * result["forward_flops_per_view"],
        fp32_peak_gflops=fp32_peak,
        cpu_share=timed["cpu_share"],
        ratio=ratio,
    )


def ratio(result, mode, reference, reference_mode, what, cpu_time=False):
    """`"0.98x what"`: images/s of `mode` over those of `reference_mode`.

    With `cpu_time`, also the ratio of images per CPU-second, which other load on
    the machine disturbs much less than the wall-clock rate.
    """
    timed, reference_timed = _timed(result, mode), _timed(reference, reference_mode)
    if timed is None or reference_timed is None:
        return "-"
    text = f"{timed['rate'] / reference_timed['rate']:.2f}x {what}".rstrip()
    if cpu_time:
        text += f" ({timed['cpu_rate'] / reference_timed['cpu_rate']:.2f}x by CPU time)"
    return text


def shared_rss(result):
    """The peak-memory cell of a run that shared its process with an earlier one."""
    return "-" if "error" in result else f"<= {result['final_peak_rss_mib']:.0f}"


def rows(results, fp32_peak):
    """The table rows of `configurations()`' results."""
    base = results["resnet18"]
    views = "SimCLR.fit, pre-made views"

    def fit_row(label, ratio_text=""):
        return training_row("training", results[label], "fit", views, fp32_peak, ratio_text)

    return [
        training_row(
            "training", base, "fit", views, fp32_peak,
            ratio(base, "fit", base, "bare", "bare step", cpu_time=True),
        ),
        training_row(
            "training", base, "fit_augment", "SimCLR.fit, SimCLRAugment in tf.data",
            fp32_peak,
            ratio(base, "fit_augment", base, "bare", "bare step", cpu_time=True),
            rss=shared_rss(base),
        ),
        training_row(
            "training", base, "bare", "bare GradientTape step, pre-made views",
            fp32_peak, "reference", rss=shared_rss(base),
        ),
        fit_row("resnet18_bf16", ratio(results["resnet18_bf16"], "fit", base, "fit", "fp32")),
        fit_row(
            "resnet18_xla", ratio(results["resnet18_xla"], "fit", base, "fit", "graph mode")
        ),
        fit_row("resnet50"),
        fit_row(
            "resnet50_xla",
            ratio(results["resnet50_xla"], "fit", results["resnet50"], "fit", "graph mode"),
        ),
    ]


def notes(results):
    """Findings worth a line under the table (non-finite losses)."""
    unique = {id(result): result for result in results.values()}
    return [
        f"{describe(result['config'])}: non-finite loss {result['losses']}"
        for result in unique.values()
        if not result.get("finite", True)
    ]


def plan(quick):
    """`(label, script, config)` of every child this script needs."""
    return [(label, SCRIPT, config) for label, config in configurations(quick).items()]


def main():
    _measure.child_main(measure)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models and batches")
    args = parser.parse_args()
    run = _measure.Session(plan(args.quick), args.quick)
    run.print_report(
        "Training throughput" + (" (--quick)" if args.quick else ""),
        rows(run.results, run.fp32_peak),
        notes(run.results),
    )


if __name__ == "__main__":
    main()
