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

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402

# name -> (width multiplier, stem stride); the first is the reference.
ENCODERS = {
    "x0.5, stem stride 1": (0.5, 1),
    "x0.5, stem stride 2": (0.5, 2),
    "x0.25, stem stride 1": (0.25, 1),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=256)
    args = parser.parse_args()

    import keras
    import numpy as np

    from keras_simclr import augment
    from keras_simclr import data
    from keras_simclr import models
    from keras_simclr import runner

    keras.mixed_precision.set_global_policy(runner.mixed_precision_policy("auto"))
    rng = np.random.default_rng(0)
    # The cost does not depend on what the pixels show.
    images = rng.integers(0, 256, (8 * args.batch_size, 28, 28, 1), "uint8")
    labels = rng.integers(0, 10, len(images))

    def run_of(width_multiplier, stem_stride):
        keras.utils.set_random_seed(0)
        encoder = models.resnet(
            18, width_multiplier, input_shape=(28, 28, 1), stem_stride=stem_stride
        )
        head = models.projection_head(encoder.output_shape[-1], output_dim=128)
        model = models.SimCLR(
            encoder, head, temperature=0.2, num_classes=10, probe_on="images",
            l2_weight_decay=1e-4,
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
            probe_optimizer=keras.optimizers.Adam(0.1),
        )
        dataset = data.pretraining_dataset(
            (images, labels), args.batch_size,
            augment=augment.SimCLRAugment(28, preset="grayscale", seed=0), seed=0,
            probe_images=True,
        )
        ends = []
        timer = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: ends.append(
                (time.perf_counter(), time.process_time())
            )
        )

        def run():
            ends.clear()
            model.fit(dataset, epochs=1, steps_per_epoch=args.steps + 1, verbose=0, shuffle=False,
                      callbacks=[timer])
            (first, cpu_first), (last, cpu_last) = ends[0], ends[-1]
            return args.steps * args.batch_size, last - first, cpu_last - cpu_first

        run()  # traces the step, warms up the kernels
        return run

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
