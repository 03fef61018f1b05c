"""The library's overhead alone: `SimCLR.fit` against a bare `GradientTape` step.

Runs only `train_throughput.py`'s baseline configuration (ResNet-18 at 32 px, batch
256, float32, graph mode; `--quick`: the small version) in this process, timing
`SimCLR.fit` on pre-made views, `SimCLR.fit` on `SimCLRAugment` in tf.data and a bare
hand-written step in alternating rounds, and prints their ratios, by wall-clock time
and by CPU time (which other load on the machine disturbs much less). A few minutes
on 2 cores, against the 40 of the full `run_all.py`.

Usage:

    python benchmarks/library_overhead.py [--quick]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_throughput  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small model and batch")
    args = parser.parse_args()
    config = train_throughput.baseline_config(args.quick)
    result = train_throughput.measure(config)
    print(f"# {train_throughput.describe(config)}", flush=True)
    for mode, label in (("fit", "SimCLR.fit, pre-made views"),
                        ("fit_augment", "SimCLR.fit, SimCLRAugment in tf.data")):
        ratio = train_throughput.ratio(result, mode, result, "bare", "bare step", cpu_time=True)
        print(f"{label}: {ratio}", flush=True)


if __name__ == "__main__":
    main()
