"""What the online probe costs: trained on the clean images against on the views, and
scored by the moving average of its weights against by the weights themselves.

The main job's training (`simclr` defaults: ResNet-18 at a quarter width, 28 px
grayscale Fashion-MNIST-sized images, batch 256, `SimCLRAugment` in tf.data, the
probe's own Adam, bfloat16 where the CPU has it) in one process, as two models timed
in alternating rounds: the probe on the views (`probe_on="views"`) and on the clean
images the pipeline carries (`probe_on="images"`, one more inference-mode encoder
pass), and the job's default: on the clean images with the moving average of the
probe's weights (`probe_average=0.98`, two more small assignments per step). Prints
pairs per second of each and the ratios, by wall-clock and by CPU time. About 4 minutes
on 2 cores.

Usage:

    python benchmarks/probe_cost.py [--steps=20] [--rounds=3]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402


def main():
    args = _measure.main_job_arguments(__doc__, steps=20, rounds=3)

    import keras

    from keras_simclr import models

    def run_of(probe_on, probe_average=0.0):
        keras.utils.set_random_seed(0)
        encoder = models.resnet(18, 0.25, input_shape=(28, 28, 1))
        return _measure.main_job_fit(
            encoder, args.batch_size, args.steps, probe_on=probe_on, probe_average=probe_average
        )

    runs = {
        "views": run_of("views"),
        "images": run_of("images"),
        "images, averaged": run_of("images", probe_average=0.98),
    }
    timed = _measure.alternate(runs, args.rounds)
    load = _measure.load_average()
    print(f"# main job's training, batch {args.batch_size}, "
          f"{keras.mixed_precision.global_policy().name}, load average "
          f"{'-' if load is None else f'{load:.1f}'}")
    for name in runs:
        print(f"probe on the {name}: {timed[name]['rate']:.0f} pairs/s "
              f"({timed[name]['cpu_rate']:.0f} per CPU-second)")
    for new, old in (("images", "views"), ("images, averaged", "images")):
        print(f"{new} / {old}: {timed[new]['rate'] / timed[old]['rate']:.2f}x "
              f"({timed[new]['cpu_rate'] / timed[old]['cpu_rate']:.2f}x by CPU time)")


if __name__ == "__main__":
    main()
