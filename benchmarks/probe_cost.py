"""What training the online probe on the clean images costs, against on the views.

The main job's training (`simclr` defaults: ResNet-18 at a quarter width, 28 px
grayscale Fashion-MNIST-sized images, batch 256, `SimCLRAugment` in tf.data, the
probe's own Adam, bfloat16 where the CPU has it) in one process, as two models timed
in alternating rounds: the probe on the views (`probe_on="views"`) and on the clean
images the pipeline carries (`probe_on="images"`, one more inference-mode encoder
pass). Prints pairs per second of each and their ratio, by wall-clock and by CPU
time. About 3 minutes on 2 cores.

Usage:

    python benchmarks/probe_cost.py [--steps=20] [--rounds=3]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
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

    def run_of(probe_on):
        keras.utils.set_random_seed(0)
        encoder = models.resnet(18, 0.25, input_shape=(28, 28, 1))
        head = models.projection_head(encoder.output_shape[-1], output_dim=128)
        model = models.SimCLR(
            encoder, head, temperature=0.2, num_classes=10, probe_on=probe_on,
            l2_weight_decay=1e-4,
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
            probe_optimizer=keras.optimizers.Adam(0.1),
        )
        dataset = data.pretraining_dataset(
            (images, labels), args.batch_size,
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
            model.fit(dataset, epochs=1, steps_per_epoch=args.steps + 1, verbose=0, shuffle=False,
                      callbacks=[timer])
            (first, cpu_first), (last, cpu_last) = ends[0], ends[-1]
            return args.steps * args.batch_size, last - first, cpu_last - cpu_first

        run()  # traces the step, warms up the kernels
        return run

    runs = {"views": run_of("views"), "images": run_of("images")}
    timed = _measure.alternate(runs, args.rounds)
    load = _measure.load_average()
    print(f"# main job's training, batch {args.batch_size}, "
          f"{keras.mixed_precision.global_policy().name}, load average "
          f"{'-' if load is None else f'{load:.1f}'}")
    for name in runs:
        print(f"probe on the {name}: {timed[name]['rate']:.0f} pairs/s "
              f"({timed[name]['cpu_rate']:.0f} per CPU-second)")
    print(f"images / views: {timed['images']['rate'] / timed['views']['rate']:.2f}x "
          f"({timed['images']['cpu_rate'] / timed['views']['cpu_rate']:.2f}x by CPU time)")


if __name__ == "__main__":
    main()
