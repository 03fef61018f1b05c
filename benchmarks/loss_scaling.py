"""Time and memory of the NT-Xent loss as the global batch grows.

The loss compares every one of the 2N views with every other, so its cost grows as
O(N^2): the logits are a (2N, 2N) float32 matrix (1 GiB at N = 8192) and the
matmuls take about 6 * (2N)^2 * d floating-point operations forward and backward.
This prints, for each global batch size N, the median wall-clock time of one
forward + backward pass of `keras_simclr.losses.nt_xent` on d-dimensional
projections (gradients with respect to both views, metrics included, in a
`tf.function`), the CPU time it used summed over threads (a steadier figure on a
machine shared with other jobs), and the peak memory it needs.

Peak memory is the increase of the process' peak resident set size (`ru_maxrss`)
over the run, measured after TensorFlow has started, the inputs exist and the
function is traced; TensorFlow's allocator statistics
(`tf.config.experimental.get_memory_info`) report nothing for CPU devices. Each
batch size runs in a fresh process so the peaks do not mask each other.

Usage:

    python benchmarks/loss_scaling.py            # N = 256 ... 8192 (needs ~8 GB RAM)
    python benchmarks/loss_scaling.py --quick    # N = 256 ... 1024, fewer repeats
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

_FULL_BATCH_SIZES = (256, 512, 1024, 2048, 4096, 8192)
_QUICK_BATCH_SIZES = (256, 512, 1024)


def _measure(batch_size, dim, temperature, repeats):
    """Runs in a child process; returns the measurements of one batch size."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from keras_simclr import losses

    generator = tf.random.Generator.from_seed(0)
    z_a = generator.normal((batch_size, dim))
    z_b = z_a + 0.5 * generator.normal((batch_size, dim))

    @tf.function
    def forward_backward(z_a, z_b):
        with tf.GradientTape() as tape:
            tape.watch([z_a, z_b])
            loss = losses.nt_xent(z_a, z_b, temperature=temperature).loss
        return loss, tape.gradient(loss, [z_a, z_b])

    forward_backward.get_concrete_function(z_a, z_b)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu_times = [], []
    for _ in range(repeats + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        loss, gradients = forward_backward(z_a, z_b)
        _ = loss.numpy(), [g.numpy() for g in gradients]
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The first call also initialises TensorFlow's kernels; leave it out.
    seconds = statistics.median(times[1:])
    flops = 6 * (2 * batch_size) ** 2 * dim
    return {
        "batch_size": batch_size,
        "seconds": seconds,
        "cpu_seconds": statistics.median(cpu_times[1:]),
        "gflops": flops / seconds / 1e9,
        "peak_mib": (peak_kib - baseline_kib) / 1024,
        "logits_mib": (2 * batch_size) ** 2 * 4 / 2**20,
        "loss": float(loss),
    }


def _run_child(batch_size, args):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        str(batch_size),
        "--dim",
        str(args.dim),
        "--temperature",
        str(args.temperature),
        "--repeats",
        str(args.repeats),
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=args.timeout, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"Batch size {batch_size} failed (exit code {completed.returncode}):\n"
            f"{completed.stderr[-2000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        help=f"global batch sizes N (default {' '.join(map(str, _FULL_BATCH_SIZES))})",
    )
    parser.add_argument("--dim", type=int, default=128, help="projection size d")
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=None, help="timed passes")
    parser.add_argument(
        "--quick", action="store_true", help="N = 256 ... 1024 and 3 timed passes"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds per batch size"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5

    if args.child is not None:
        print(
            json.dumps(_measure(args.child, args.dim, args.temperature, args.repeats))
        )
        return

    batch_sizes = args.batch_sizes or (
        _QUICK_BATCH_SIZES if args.quick else _FULL_BATCH_SIZES
    )
    print(
        f"NT-Xent forward + backward, d = {args.dim}, float32, CPU "
        f"({os.cpu_count()} logical cores), median of {args.repeats} passes"
    )
    print()
    print(
        "| global batch N | logits (2N)^2 | time | CPU time | matmul GFLOP/s "
        "| peak memory |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for batch_size in batch_sizes:
        result = _run_child(batch_size, args)
        print(
            f"| {result['batch_size']} | {result['logits_mib']:.0f} MiB "
            f"| {result['seconds'] * 1000:.0f} ms "
            f"| {result['cpu_seconds'] * 1000:.0f} ms | {result['gflops']:.0f} "
            f"| {result['peak_mib']:.0f} MiB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
