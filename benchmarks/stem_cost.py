"""What the CIFAR stem at stride 2 buys: training throughput against the paper's stem.

The 30-minute recipe's training (ResNet-18, 28 px grayscale Fashion-MNIST-sized images,
batch 256, `SimCLRAugment` in tf.data, the probe on the clean images, bfloat16 where the
CPU has it) in one process, as models timed in alternating rounds: the half width with
the paper's stride-1 stem (the reference of the ratios), the half width with
`stem_stride=2` (every later layer at half the resolution), and the quarter width with
the stride-1 stem (the main job's encoder). Prints pairs per second of each and its
ratio to the reference, by wall-clock and by CPU time. About 5 minutes on 2 cores.

Usage:

    python benchmarks/stem_cost.py [--steps=8] [--rounds=2]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402

# name -> (width multiplier, stem stride); the first is the reference.
ENCODERS = {
    "x0.5, stem stride 1": (0.5, 1),
    "x0.5, stem stride 2": (0.5, 2),
    "x0.25, stem stride 1": (0.25, 1),
}


def main():
    args = _measure.main_job_arguments(__doc__, steps=8, rounds=2)

    import keras

    from keras_simclr import models

    def run_of(width_multiplier, stem_stride):
        keras.utils.set_random_seed(0)
        encoder = models.resnet(
            18, width_multiplier, input_shape=(28, 28, 1), stem_stride=stem_stride
        )
        return _measure.main_job_fit(encoder, args.batch_size, args.steps)

    runs = {name: run_of(*settings) for name, settings in ENCODERS.items()}
    timed = _measure.alternate(runs, args.rounds)
    load = _measure.load_average()
    print(f"# ResNet-18 training at 28 px, batch {args.batch_size}, "
          f"{keras.mixed_precision.global_policy().name}, load average "
          f"{'-' if load is None else f'{load:.1f}'}")
    reference = timed[next(iter(ENCODERS))]
    for name in runs:
        print(f"{name}: {timed[name]['rate']:.0f} pairs/s, "
              f"{timed[name]['rate'] / reference['rate']:.2f}x "
              f"({timed[name]['cpu_rate'] / reference['cpu_rate']:.2f}x by CPU time)")


if __name__ == "__main__":
    main()
