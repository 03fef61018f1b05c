"""Measurement helpers shared by the speed benchmarks (scripts, not library code).

- `matmul_peak(dtype, size, repeats)`: this machine's float32 / bfloat16 matmul
  FLOP/s, the best of several timed square `tf.linalg.matmul`s. The yardstick of
  "model FLOP/s as a fraction of the peak".
- `peak_rss_mib()`: the resident-set high-water mark of this process
  (`getrusage(RUSAGE_SELF).ru_maxrss`); every configuration runs in a fresh process
  so that the peaks do not mask each other.
- `forward_flops(model)`: floating-point operations of one forward pass per
  example, counted from the model's convolution and dense layers (2 per
  multiply-add).
- `run_child(script, config)` / `child_main(measure)`: run one configuration in a
  fresh `python script --child JSON` process and read back its JSON result.
- `machine()`, `markdown_table(...)`, `alternate(...)`: the run's context, the
  printed table and alternating timing rounds; `main_job_fit(...)`: a timed run of
  the main job's training for `alternate`.

Nothing here imports TensorFlow at module level: a child process may first have to
split the CPU into logical devices, which TensorFlow allows only before it starts.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))


# Context ---------------------------------------------------------------------


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            lines = cpuinfo.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), set()
    model, flags = platform.machine(), set()
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == platform.machine():
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def load_average():
    """The 1-minute load average, or `None` where the OS does not report it."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def machine():
    """Date, CPU, cores, memory and versions: the context every figure needs."""
    import keras
    import tensorflow as tf

    model, flags = _cpu_model()
    extensions = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": model,
        "extensions": extensions,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "load_average": load_average(),
    }


def describe_machine(info):
    """One line for the report header."""
    extensions = ", ".join(info["extensions"]) or "no AVX"
    return (
        f"{info['date']}; {info['cpu']} ({extensions}), {info['cores']} cores, "
        f"{info['memory_gib']:.0f} GiB; Python {info['python']}, TensorFlow "
        f"{info['tensorflow']}, Keras {info['keras']}"
    )


# Memory ----------------------------------------------------------------------


def peak_rss_mib():
    """This process' peak resident set size so far, in MiB (`ru_maxrss`)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# Matmul peak -----------------------------------------------------------------


def matmul_peak(dtype="float32", size=4096, repeats=5):
    """The best FLOP/s of `repeats` square `size x size` matmuls in `dtype`.

    A large matmul is the fastest thing this CPU does through TensorFlow (oneDNN
    kernels), so it is the ceiling against which model FLOP/s are judged. The best
    time, not the median, because the question is what the hardware can do; other
    load on the machine only ever slows a run down.
    """
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_uniform((size, size), (1, 2)), dtype)
    b = tf.cast(tf.random.stateless_uniform((size, size), (3, 4)), dtype)

    @tf.function
    def product(a, b):
        # Summing the product costs size^2 additions against 2 size^3 in the
        # matmul, and keeps the result from being copied back to Python.
        return tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b), tf.float32))

    product(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def matmul_peaks(config):
    """Child measurement: float32 and bfloat16 matmul peaks in GFLOP/s."""
    size, repeats = config.get("size", 4096), config.get("repeats", 5)
    return {
        dtype: matmul_peak(dtype, size, repeats) / 1e9
        for dtype in config.get("dtypes", ("float32", "bfloat16"))
    }


# FLOPs -----------------------------------------------------------------------


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _layers(layer)
        else:
            yield layer


def forward_flops(model):
    """Forward FLOPs per example of the convolution and dense layers of `model`.

    Counted as 2 per multiply-add, from each layer's kernel and output shape, which
    is how the ResNet papers count (ResNet-50 at 224 px: about 4.1 G multiply-adds,
    8.2 GFLOPs). Batch norm, activations, additions and pooling are left out: they
    are a few percent of the operations and not matmul-shaped. Nested models are
    counted through. Every counted layer must be called once, in a functional
    model, so that its output shape is known.
    """
    import keras

    convolutions = (
        keras.layers.Conv1D,
        keras.layers.Conv2D,
        keras.layers.Conv3D,
        keras.layers.DepthwiseConv2D,
    )
    total = 0
    for layer in _layers(model):
        if isinstance(layer, convolutions):
            output_shape = layer.output.shape
            positions = 1
            for side in output_shape[1:-1]:
                positions *= side
            # The kernel's last axis is the output channels (or the depth
            # multiplier), the others the receptive field of one output value.
            kernel_size = 1
            for side in layer.kernel.shape[:-1]:
                kernel_size *= side
            outputs = output_shape[-1]
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                outputs = layer.depth_multiplier
            total += 2 * positions * kernel_size * outputs
        elif isinstance(layer, keras.layers.Dense):
            rows = 1
            for side in layer.output.shape[1:-1]:
                rows *= side
            total += 2 * rows * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


# Timing ----------------------------------------------------------------------


def alternate(runs, rounds):
    """Times `runs` in alternating rounds.

    Each run is a callable returning the number of images it processed, or
    `(images, seconds, cpu_seconds)` when it times itself (e.g. leaving out a
    set-up).

    Alternating spreads the other load on the machine over all runs alike, so
    ratios between them stay meaningful when the absolute figures do not.

    Returns:
        name -> dict with the median `rate` (images/s) over the rounds, the list
        of `rates`, the median `cpu_rate` (images per CPU-second of the process)
        and `cpu_share`: the process' CPU time over wall time and cores (1.0 =
        both cores busy with this process the whole time; lower when the machine
        was shared or the work did not parallelise).
    """
    rates = {name: [] for name in runs}
    cpu_rates = {name: [] for name in runs}
    cpu_shares = {name: [] for name in runs}
    cores = len(os.sched_getaffinity(0))
    for _ in range(rounds):
        for name, run in runs.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            done = run()
            if not isinstance(done, tuple):
                done = (
                    done,
                    time.perf_counter() - start,
                    time.process_time() - cpu_start,
                )
            images, seconds, cpu_seconds = done
            rates[name].append(images / seconds)
            cpu_rates[name].append(images / cpu_seconds)
            cpu_shares[name].append(cpu_seconds / seconds / cores)
    return {
        name: {
            "rate": statistics.median(rates[name]),
            "rates": rates[name],
            "cpu_rate": statistics.median(cpu_rates[name]),
            "cpu_share": statistics.median(cpu_shares[name]),
        }
        for name in runs
    }


def main_job_arguments(doc, steps, rounds, add_arguments=None, batch_size=True, check=None):
    """The command line of a `main_job_fit` comparison (`--steps`, `--rounds`,
    `--batch_size` unless `batch_size` is False, and what `add_arguments(parser)` adds),
    parsed before TensorFlow is imported; `check(args)` may return an error message that
    refuses the command line. Also sets the job's mixed-precision policy."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=steps, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=rounds)
    if batch_size:
        parser.add_argument("--batch_size", type=int, default=256)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    error = None if check is None else check(args)
    if error:
        parser.error(error)

    import keras

    from keras_simclr import runner

    keras.mixed_precision.set_global_policy(runner.mixed_precision_policy("auto"))
    return args


def main_job_fit(encoder, batch_size, steps, probe_on="images", probe_average=0.0):
    """A callable for `alternate`: `steps` timed steps of the main job's training.

    On 8 batches of random 28x28 grayscale images (the cost does not depend on what
    the pixels show), the `simclr` command's recipe on `encoder` (a 2-layer head,
    temperature 0.2, SGD Nesterov with the reference's L2 decay, the probe's own
    Adam, `SimCLRAugment`'s grayscale preset in tf.data); its probe trains on the
    clean images or on the views (`probe_on`), scored by a moving average of its
    weights with `probe_average` above 0 (the job's default, 0.98). `fit()` is timed from the end of its first step to the end
    of its last, leaving out its set-up; the step is traced and warmed up here.
    Returns `run() -> (pairs, seconds, cpu_seconds)`.
    """
    import keras
    import numpy as np

    from keras_simclr import augment
    from keras_simclr import data
    from keras_simclr import models

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8 * batch_size, 28, 28, 1), "uint8")
    labels = rng.integers(0, 10, len(images))
    head = models.projection_head(encoder.output_shape[-1], output_dim=128)
    model = models.SimCLR(
        encoder, head, temperature=0.2, num_classes=10, probe_on=probe_on,
        l2_weight_decay=1e-4, probe_average=probe_average,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        probe_optimizer=keras.optimizers.Adam(0.1),
    )
    dataset = data.pretraining_dataset(
        (images, labels), batch_size,
        augment=augment.SimCLRAugment(28, preset="grayscale", seed=0), seed=0,
        probe_images=probe_on == "images",
    )
    ends = []
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: ends.append(
            (time.perf_counter(), time.process_time())
        )
    )

    def run():
        ends.clear()
        model.fit(dataset, epochs=1, steps_per_epoch=steps + 1, verbose=0, shuffle=False,
                  callbacks=[timer])
        (first, cpu_first), (last, cpu_last) = ends[0], ends[-1]
        return steps * batch_size, last - first, cpu_last - cpu_first

    run()
    return run


def print_against_first(title, timed):
    """Prints `# title, <mixed-precision policy>, load average L`, then each run of
    `timed` (from `alternate`) as pairs per second and its ratio to the first run, by
    wall-clock and by CPU time."""
    import keras

    load = load_average()
    print(f"# {title}, {keras.mixed_precision.global_policy().name}, load average "
          f"{'-' if load is None else f'{load:.1f}'}")
    reference = next(iter(timed.values()))
    for name, run in timed.items():
        print(f"{name}: {run['rate']:.0f} pairs/s, "
              f"{run['rate'] / reference['rate']:.2f}x "
              f"({run['cpu_rate'] / reference['cpu_rate']:.2f}x by CPU time)")


# Child processes -------------------------------------------------------------


def run_child(script, config, timeout=3600):
    """Runs `python script --child JSON(config)` and returns its JSON result.

    A fresh process per configuration gives each its own RSS high-water mark and
    lets it split the CPU into logical devices before TensorFlow starts.
    """
    return run_script(script, ["--child", json.dumps(config)], timeout)


def run_script(script, arguments, timeout=3600):
    """Runs `python script *arguments`; returns the JSON of its last output line."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    completed = subprocess.run(
        [sys.executable, script, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"{os.path.basename(script)} {' '.join(arguments)} failed (exit code "
            f"{completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def child_main(measure, argv=None):
    """If the command line is `--child JSON`, prints `measure(config)` and exits."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--child")
    args, _ = parser.parse_known_args(argv)
    if args.child is None:
        return
    result = measure(json.loads(args.child))
    print(json.dumps(result), flush=True)
    sys.exit(0)


def run_plan(plan, log=sys.stderr):
    """Runs every `(label, script, config)` of `plan` in its own child process.

    `config` is a dict for scripts that take `--child JSON`, or a list of
    command-line arguments for scripts with their own child protocol. A
    configuration that appears under several labels runs once.

    Returns:
        label -> the child's result.
    """
    done, results = {}, {}
    for label, script, config in plan:
        key = (script, json.dumps(config, sort_keys=True))
        if key not in done:
            start = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] {label} ...", end="", file=log, flush=True)
            try:
                if isinstance(config, list):
                    done[key] = run_script(script, config)
                else:
                    done[key] = run_child(script, config)
                outcome = f"{time.perf_counter() - start:.0f} s"
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                # One configuration running out of memory or time should not cost
                # the figures of all the others; its row says what happened.
                done[key] = {"config": config, "error": _short_error(error)}
                outcome = f"failed:\n{error}"
            print(f" {outcome}", file=log, flush=True)
        results[label] = done[key]
    return results


def _short_error(error):
    if isinstance(error, subprocess.TimeoutExpired):
        return f"timed out after {error.timeout:.0f} s"
    message = str(error)
    if "exit code -9" in message:
        return "killed (exit code -9, out of memory?)"
    last_line = message.strip().splitlines()[-1]
    return last_line[:120]


def measure_peaks(quick, when, log=sys.stderr):
    """The matmul peaks, in a child process of their own."""
    print(f"[{time.strftime('%H:%M:%S')}] matmul peak ({when}) ...", file=log, flush=True)
    return run_child(os.path.abspath(__file__), peak_config(quick))


class Session:
    """A benchmark run: the plan's children between two measurements of the matmul
    peaks, with the start time and load average the report prints."""

    def __init__(self, plan, quick):
        self.started, self.load_start = time.perf_counter(), load_average()
        self.start_peaks = measure_peaks(quick, "start")
        self.results = run_plan(plan)
        self.end_peaks = measure_peaks(quick, "end")
        self.fp32_peak = fp32_peak(self.start_peaks, self.end_peaks)
        self.peak_rows = peak_rows(self.start_peaks, self.end_peaks)

    def print_report(self, title, rows, notes=()):
        """`print_report` with this run's machine, load, duration and peak rows."""
        print_report(
            title, machine(), self.load_start, self.started, self.peak_rows + rows, notes
        )


def print_report(title, info, load_start, started, rows, notes=()):
    """Prints the header, the table and the legend."""
    load_end = load_average()
    print(f"## {title}")
    print()
    print(f"{describe_machine(info)}.")
    print(
        f"Load average (1 min): {fmt(load_start, '.2f')} at the start, "
        f"{fmt(load_end, '.2f')} at the end; {time.perf_counter() - started:.0f} s."
    )
    print()
    print(markdown_table(COLUMNS, rows, align="ll" + "r" * (len(COLUMNS) - 2)))
    print()
    for note in notes:
        print(f"- {note}")
    print(LEGEND)


# Output ----------------------------------------------------------------------

# The columns of every benchmark table, so that `run_all.py` can print one table.
COLUMNS = (
    "benchmark",
    "configuration",
    "images/s",
    "peak RSS (MiB)",
    "GFLOP/image",
    "model GFLOP/s",
    "of fp32 peak",
    "CPU share",
    "ratio",
)

LEGEND = """\
- images/s: training, source images per second, each trained as two views (a step of
  batch 256 encodes 512 views); augmentation, views made per second; loss, examples per
  second (a pass scores 2N views against 2N).
- peak RSS: resident set size high-water mark of a fresh process running the
  configuration (`getrusage` `ru_maxrss`), read after its first run; "<= X" marks
  runs timed together in one process, whose own peaks are not separable (X is the
  process peak); "+X" is the increase over the process' baseline (loss benchmark).
- GFLOP/image: model FLOPs of training one image (two views x 3 x forward; the forward
  pass counted as 2 FLOPs per multiply-add of the convolution and dense layers).
- model GFLOP/s: images/s x GFLOP/image; "of fp32 peak": that as a fraction of this
  machine's float32 matmul peak measured in the same run.
- CPU share: the process' CPU time over wall time x cores during the timed runs; below
  1.0 the machine was shared or the work did not use both cores.
- ratio: images/s (or matmul FLOP/s) against the reference the cell names."""


def fmt(value, spec=".0f", missing="-"):
    """Formats a number, or returns `missing` for `None`."""
    return missing if value is None else format(value, spec)


def table_row(
    benchmark,
    configuration,
    rate=None,
    rss="-",
    flops_per_image=None,
    fp32_peak_gflops=None,
    cpu_share=None,
    ratio="",
    gflops=None,
):
    """One row in `COLUMNS` order; `gflops` defaults to rate x flops_per_image."""
    if gflops is None and rate is not None and flops_per_image is not None:
        gflops = rate * flops_per_image / 1e9
    fraction = None
    if gflops is not None and fp32_peak_gflops:
        fraction = 100 * gflops / fp32_peak_gflops
    return [
        benchmark,
        configuration,
        # Three significant figures below 100 (ResNet-50 trains a few images/s).
        fmt(rate, ".0f" if rate is None or rate >= 100 else ".3g"),
        rss if isinstance(rss, str) else fmt(rss),
        fmt(None if flops_per_image is None else flops_per_image / 1e9, ".3g"),
        fmt(gflops),
        fmt(fraction, ".0f", "-") + ("%" if fraction is not None else ""),
        fmt(cpu_share, ".2f"),
        ratio,
    ]


def peak_rows(start, end):
    """The matmul-peak rows; `start`/`end` are `matmul_peaks` results (GFLOP/s)."""
    fp32 = max(start["float32"], end["float32"])
    rows = [
        table_row(
            "matmul peak",
            "float32, best of start / end of run "
            f"({start['float32']:.0f} / {end['float32']:.0f})",
            gflops=fp32,
            fp32_peak_gflops=fp32,
        )
    ]
    if "bfloat16" in start:
        bf16 = max(start["bfloat16"], end.get("bfloat16", 0))
        rows.append(
            table_row(
                "matmul peak",
                "bfloat16, best of start / end of run "
                f"({start['bfloat16']:.0f} / {end.get('bfloat16', 0):.0f})",
                gflops=bf16,
                fp32_peak_gflops=fp32,
                ratio=f"{bf16 / fp32:.2f}x float32",
            )
        )
    return rows


def peak_config(quick):
    """The matmul sizes: 4096^2 (2048^2 with `--quick`)."""
    return {"size": 2048 if quick else 4096, "repeats": 3 if quick else 5}


def fp32_peak(start, end):
    """The float32 peak the fractions use: the higher of the two measurements."""
    return max(start["float32"], end["float32"])


def markdown_table(headers, rows, align=None):
    """A markdown table; `align` is a string of "l"/"r", one per column."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)



if __name__ == "__main__":
    child_main(matmul_peaks)
