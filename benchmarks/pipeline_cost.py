"""What the input pipeline costs, and how training scales with the batch and replicas.

Prints, measured in one run on this machine (issue 10, "Speed benchmarks"):

- End-to-end: `SimCLR.fit()` images/s with the augmentation on the host, in tf.data
  (`data.pretraining_dataset(..., augment=SimCLRAugment(32, preset="cifar"))`),
  against the bare training step on pre-made views, for ResNet-18 (CIFAR stem) at
  32x32, batch 256, float32. Both run on the same two cores, so the ratio is what
  the augmentation takes away from training on this machine; the three runs (with
  `fit()` on pre-made views) alternate in one process. Target: >= 0.85.
- Scaling with the batch: images/s and peak memory of `SimCLR.fit()` on pre-made
  views for batch sizes 64 ... 1024, one fresh process each.
- Scaling with replicas: the same at batch 256 on one device and under
  `MirroredStrategy` over two logical CPU devices (the one CPU split before
  TensorFlow starts, global batch norm and cross-replica negatives on). On a
  2-core machine both share the same cores, so this measures the cost of the
  distribution machinery, not a speed-up.

The source images are random `uint8` 32x32x3 arrays: the cost of the augmentation
does not depend on what the pixels show, and no data set needs to be present.
Images/s, peak memory and the other columns are defined in the legend printed under
the table; `train_throughput.py` documents how the steps are timed.

Usage:

    python benchmarks/pipeline_cost.py            # batch 64 ... 1024
    python benchmarks/pipeline_cost.py --quick    # width 1/4, batch 16 ... 64, CI
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402
import train_throughput  # noqa: E402

_FULL_BATCH_SIZES = (64, 128, 256, 512, 1024)
_QUICK_BATCH_SIZES = (16, 32, 64)


def _scaled(quick, **changes):
    config = dict(train_throughput.baseline_config(quick), modes=["fit"], rounds=2)
    config.update(changes)
    return config


def scaling_plan(quick, batch_sizes=None):
    """`(label, script, config)` of the batch-size and replica children.

    The baseline configuration stands in for its own batch size and for one
    replica, so it runs once.
    """
    baseline = train_throughput.baseline_config(quick)
    if batch_sizes is None:
        batch_sizes = _QUICK_BATCH_SIZES if quick else _FULL_BATCH_SIZES
    plan = []
    for batch_size in batch_sizes:
        config = (
            baseline
            if batch_size == baseline["batch_size"]
            else _scaled(quick, batch_size=batch_size)
        )
        plan.append((f"batch_{batch_size}", train_throughput.SCRIPT, config))
    plan.append(("replicas_1", train_throughput.SCRIPT, baseline))
    plan.append(("replicas_2", train_throughput.SCRIPT, _scaled(quick, replicas=2)))
    return plan


def plan(quick, batch_sizes=None):
    """Every child this script needs: the baseline, then the scaling runs."""
    baseline = ("resnet18", train_throughput.SCRIPT, train_throughput.baseline_config(quick))
    return [baseline] + scaling_plan(quick, batch_sizes)


def add_batch_sizes_flag(parser):
    """`--batch-sizes`, for machines with less memory than a batch of 1024 needs."""
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        help="batch sizes of the scaling runs (default "
        f"{' '.join(map(str, _FULL_BATCH_SIZES))}; --quick "
        f"{' '.join(map(str, _QUICK_BATCH_SIZES))}). ResNet-18 at 32 px needs "
        "about 11 MiB of memory per image, 12.5 GiB at 1024.",
    )


def pipeline_rows(results, fp32_peak):
    """Full pipeline vs bare step (and fit on pre-made views) of the baseline."""
    base = results["resnet18"]
    shared = train_throughput.shared_rss(base)
    runs = (
        ("fit_augment", "SimCLR.fit, SimCLRAugment in tf.data", shared),
        ("fit", "SimCLR.fit, pre-made views", None),
        ("bare", "bare GradientTape step, pre-made views", shared),
    )
    return [
        train_throughput.training_row(
            "pipeline",
            base,
            mode,
            run,
            fp32_peak,
            ratio=(
                "reference"
                if mode == "bare"
                else train_throughput.ratio(base, mode, base, "bare", "bare step", True)
            ),
            rss=rss,
        )
        for mode, run, rss in runs
    ]


def scaling_rows(results, fp32_peak):
    """Images/s and memory against the batch size and the number of replicas."""
    base = results["resnet18"]
    batch_labels = sorted(
        (label for label in results if label.startswith("batch_")),
        key=lambda label: int(label.split("_")[1]),
    )
    rows = []
    for benchmark, labels in (
        ("batch scaling", batch_labels),
        ("replica scaling", ["replicas_1", "replicas_2"]),
    ):
        for label in labels:
            result = results[label]
            if result is base:
                text = "reference"
            elif benchmark == "replica scaling":
                text = train_throughput.ratio(result, "fit", base, "fit", "1 device")
            else:
                text = train_throughput.ratio(
                    result, "fit", base, "fit", f"b{base['config']['batch_size']}"
                )
            rows.append(
                train_throughput.training_row(
                    benchmark, result, "fit", "SimCLR.fit, pre-made views", fp32_peak, text
                )
            )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small model and batches")
    add_batch_sizes_flag(parser)
    args = parser.parse_args()
    run = _measure.Session(plan(args.quick, args.batch_sizes), args.quick)
    run.print_report(
        "Input pipeline cost and scaling" + (" (--quick)" if args.quick else ""),
        pipeline_rows(run.results, run.fp32_peak)
        + scaling_rows(run.results, run.fp32_peak),
        train_throughput.notes(run.results),
    )


if __name__ == "__main__":
    main()
