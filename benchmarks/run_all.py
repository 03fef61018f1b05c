"""Runs every speed benchmark and prints one table (issue 10, "Speed benchmarks").

In one run on this machine, each configuration in a fresh process:

- the float32 and bfloat16 matmul peaks (at the start and the end of the run);
- augmentation: `SimCLRAugment` (ImageNet preset) as a batched tf.data map (one
  batch at a time and two in flight), the same compiled with XLA, and a per-example `tf.image` pipeline, at 224 and 32 px
  (`augment_throughput.py`);
- loss: forward + backward of NT-Xent for growing global batches (`loss_scaling.py`);
- training: ResNet-18 at 32 px and ResNet-50 at 224 px, float32 / mixed_bfloat16,
  graph mode / XLA, `SimCLR.fit()` against a bare GradientTape step and against the
  full pipeline with augmentation in tf.data (`train_throughput.py`);
- scaling: images/s and memory against the batch size (64 ... 1024) and against the
  number of replicas (1 and 2 logical CPU devices) (`pipeline_cost.py`).

The table gives images/s, peak memory (resident set size), model FLOP/s as a fraction
of the float32 matmul peak and the ratios the issues ask for; the targets follow it.
The header names the machine, the date and the load average: on a shared machine the
absolute figures drop, the ratios of runs timed in the same process much less.

Usage:

    python benchmarks/run_all.py            # the full configurations (~40 min on 2 cores)
    python benchmarks/run_all.py --quick    # small models and batches (CI, 3-8 min)
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402
import pipeline_cost  # noqa: E402
import train_throughput  # noqa: E402

SCRIPT = os.path.abspath(__file__)
_LOSS_SCRIPT = os.path.join(_measure.BENCHMARKS_DIR, "loss_scaling.py")

_FULL_LOSS_BATCH_SIZES = (256, 1024, 4096)
_QUICK_LOSS_BATCH_SIZES = (256, 1024)
# The loss benchmark's defaults: projections of 128 dimensions, ImageNet's temperature.
_LOSS_DIM = 128
_LOSS_TEMPERATURE = 0.1

# Targets of issues 6 and 10, and the overhead the library may add to a bare step.
_TARGET_PEAK_FRACTION = 0.55
_TARGET_PIPELINE_RATIO = 0.85
_TARGET_OVERHEAD_RATIO = 0.95
# Issue 3: the batched layers at 224 px at least 2x the per-example pipeline.
_TARGET_AUGMENT_RATIO = 2.0


def augment_config(size, quick):
    """One image size of the augmentation benchmark."""
    large = size >= 128
    if quick:
        # Four batches: with two in flight, fewer would time the pipeline's fill-up.
        batch_size, batches, rounds = 64, 4 if large else 16, 1
    else:
        batch_size, batches, rounds = 256, 4 if large else 20, 3
    return {
        "benchmark": "augment",
        "size": size,
        "batch_size": batch_size,
        "batches": batches,
        "rounds": rounds,
    }


def measure(config):
    """Child measurement of the augmentation benchmark at one image size."""
    import augment_throughput

    cpu_start, start = time.process_time(), time.perf_counter()
    rates = augment_throughput.measure(
        config["size"], config["batch_size"], config["batches"], config["rounds"]
    )
    cores = len(os.sched_getaffinity(0))
    return {
        "config": config,
        "rates": rates,
        "cpu_share": (time.process_time() - cpu_start) / (time.perf_counter() - start) / cores,
        "peak_rss_mib": _measure.peak_rss_mib(),
    }


def plan(quick, batch_sizes=None):
    """`(label, script, config)` of every child, in the order they run."""
    children = [
        (f"augment_{size}", SCRIPT, augment_config(size, quick)) for size in (224, 32)
    ]
    repeats = "3" if quick else "5"
    for batch_size in _QUICK_LOSS_BATCH_SIZES if quick else _FULL_LOSS_BATCH_SIZES:
        arguments = [
            "--child", str(batch_size),
            "--dim", str(_LOSS_DIM),
            "--temperature", str(_LOSS_TEMPERATURE),
            "--repeats", repeats,
        ]
        children.append((f"loss_{batch_size}", _LOSS_SCRIPT, arguments))
    children += train_throughput.plan(quick)
    children += pipeline_cost.scaling_plan(quick, batch_sizes)
    return children


def augment_rows(results):
    """Images/s of the three augmentation pipelines at each image size."""
    rows = []
    for label in sorted(
        (label for label in results if label.startswith("augment_")),
        key=lambda label: -int(label.split("_")[1]),
    ):
        result = results[label]
        config = result["config"]
        if "error" in result:
            failed = f"failed: {result['error']}"
            rows.append(_measure.table_row("augmentation", label, ratio=failed))
            continue
        rates = result["rates"]
        for name, run in (
            ("batched", "batched tf.data map"),
            ("batched_parallel", "batched map, 2 in flight"),
            ("batched_xla", "batched map, XLA"),
            ("per_example", "per-example tf.image map"),
        ):
            rows.append(
                _measure.table_row(
                    "augmentation",
                    f"SimCLRAugment imagenet {config['size']}px b{config['batch_size']}, {run}",
                    rate=rates[name],
                    rss=f"<= {result['peak_rss_mib']:.0f}",
                    cpu_share=result["cpu_share"],
                    ratio=(
                        "reference"
                        if name == "per_example"
                        else f"{rates[name] / rates['per_example']:.2f}x per-example"
                    ),
                )
            )
    return rows


def loss_rows(results, fp32_peak):
    """Examples/s, memory and matmul FLOP/s of NT-Xent for each global batch."""
    labels = sorted(
        (label for label in results if label.startswith("loss_")),
        key=lambda label: int(label.split("_")[1]),
    )
    cores = len(os.sched_getaffinity(0))
    first = results[labels[0]]
    rows = []
    for label in labels:
        result = results[label]
        if "error" in result or "error" in first:
            failed = f"failed: {result.get('error', first.get('error'))}"
            rows.append(_measure.table_row("loss", label, ratio=failed))
            continue
        n = result["batch_size"]
        rows.append(
            _measure.table_row(
                "loss",
                f"NT-Xent forward + backward, N={n}, d={_LOSS_DIM}",
                rate=n / result["seconds"],
                rss=f"+{result['peak_mib']:.0f}",
                flops_per_image=6 * (2 * n) ** 2 * _LOSS_DIM / n,
                fp32_peak_gflops=fp32_peak,
                cpu_share=result["cpu_seconds"] / result["seconds"] / cores,
                ratio=(
                    "reference"
                    if result is first
                    else f"time {result['seconds'] / first['seconds']:.1f}x "
                    f"N={first['batch_size']} ({(n / first['batch_size']) ** 2:.0f}x if O(N^2))"
                ),
            )
        )
    return rows


def targets(results, fp32_peak, quick):
    """One line per target: the measured figure and whether it is met."""
    base = results["resnet18"]
    if "error" in base:
        return [f"Targets: the baseline configuration failed ({base['error']})."]
    modes = base["modes"]
    fraction = modes["fit"]["rate"] * 6 * base["forward_flops_per_view"] / 1e9 / fp32_peak
    checks = (
        (
            "ResNet-18 training (SimCLR.fit, fp32) at >= "
            f"{_TARGET_PEAK_FRACTION:.0%} of the fp32 matmul peak",
            fraction, _TARGET_PEAK_FRACTION, f"{fraction:.0%} of the peak",
        ),
        (
            "full pipeline (SimCLRAugment in tf.data) at >= "
            f"{_TARGET_PIPELINE_RATIO:.2f}x the bare step",
            modes["fit_augment"]["rate"] / modes["bare"]["rate"],
            _TARGET_PIPELINE_RATIO,
            train_throughput.ratio(base, "fit_augment", base, "bare", "", cpu_time=True),
        ),
        (
            "SimCLR.fit on pre-made views at >= "
            f"{_TARGET_OVERHEAD_RATIO:.2f}x the bare step (the overhead the library adds)",
            modes["fit"]["rate"] / modes["bare"]["rate"],
            _TARGET_OVERHEAD_RATIO,
            train_throughput.ratio(base, "fit", base, "bare", "", cpu_time=True),
        ),
    )
    augment = results.get("augment_224", {})
    if "rates" in augment:
        rates = augment["rates"]
        for name, run in (("batched", "one batch at a time"), ("batched_parallel", "two in flight")):
            ratio = rates[name] / rates["per_example"]
            checks += (
                (
                    f"SimCLRAugment at 224 px, batched ({run}), at >= "
                    f"{_TARGET_AUGMENT_RATIO:.1f}x the per-example tf.image pipeline",
                    ratio, _TARGET_AUGMENT_RATIO, f"{ratio:.2f}x",
                ),
            )
    lines = [
        f"Target: {text}: {measured}, "
        f"{'met' if value >= target else 'NOT met'}."
        for text, value, target, measured in checks
    ]
    if quick:
        lines.append(
            "--quick shrinks the models and batches: the targets apply to the full "
            "configurations only."
        )
    return lines


def main():
    _measure.child_main(measure)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models and batches")
    pipeline_cost.add_batch_sizes_flag(parser)
    args = parser.parse_args()
    run = _measure.Session(plan(args.quick, args.batch_sizes), args.quick)
    results, fp32_peak = run.results, run.fp32_peak
    run.print_report(
        "Speed benchmarks" + (" (--quick)" if args.quick else ""),
        augment_rows(results)
        + loss_rows(results, fp32_peak)
        + train_throughput.rows(results, fp32_peak)
        + pipeline_cost.scaling_rows(results, fp32_peak),
        targets(results, fp32_peak, args.quick) + train_throughput.notes(results),
    )
    failed = sorted(label for label, result in results.items() if "error" in result)
    if failed:
        sys.exit(
            f"run_all: {len(failed)} benchmark(s) failed: {', '.join(failed)} (the "
            "table says why; the setup installs what they import: `make setup`)."
        )


if __name__ == "__main__":
    main()
