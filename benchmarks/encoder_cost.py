"""What an encoder costs to train: throughput of ResNets against a reference.

The main job's training (28 px grayscale Fashion-MNIST-sized images, batch 256,
`SimCLRAugment` in tf.data, the probe on the clean images, bfloat16 where the CPU has
it) in one process, for each encoder of `--encoders`, timed in alternating rounds; the
first is the reference of the ratios. An encoder is `DEPTHxWIDTH` or
`DEPTHxWIDTH/STRIDE` (the CIFAR stem's stride; 1 when left out). The default compares
the CIFAR stem at stride 2 with the paper's stride 1 (the quality study's resolution
rows); `--encoders=18x0.25,34x0.25,18x0.5` is its depth rows. Prints pairs per second
of each and its ratio to the reference, by wall-clock and by CPU time. About 5 minutes
on 2 cores.

Usage:

    python benchmarks/encoder_cost.py [--encoders=18x0.5,18x0.5/2,18x0.25] [--steps=8]
        [--rounds=2]
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402

DEFAULT_ENCODERS = "18x0.5,18x0.5/2,18x0.25"
_ENCODER = re.compile(r"(\d+)x(\d*\.?\d+)(?:/(\d+))?")


def parse_encoders(text):
    """`"18x0.5,18x0.5/2"` -> `[(18, 0.5, 1), (18, 0.5, 2)]`, checked before any work."""
    encoders = []
    for item in text.split(","):
        match = _ENCODER.fullmatch(item.strip())
        if not match:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not DEPTHxWIDTH or DEPTHxWIDTH/STRIDE "
                f"(e.g. 18x0.5 or 18x0.5/2)."
            )
        depth, width, stride = int(match[1]), float(match[2]), int(match[3] or 1)
        if depth not in (18, 34, 50, 101, 152, 200) or width <= 0 or stride not in (1, 2):
            raise argparse.ArgumentTypeError(
                f"{item!r} needs a depth of 18, 34, 50, 101, 152 or 200, a "
                f"width above 0 and a stride of 1 or 2."
            )
        encoders.append((depth, width, stride))
    if len(set(encoders)) != len(encoders):
        raise argparse.ArgumentTypeError(f"{text!r} names an encoder twice.")
    return encoders


def _name(depth, width, stride):
    return f"ResNet-{depth} x{width:g}, stem stride {stride}"


def main():
    args = _measure.main_job_arguments(
        __doc__, steps=8, rounds=2,
        add_arguments=lambda parser: parser.add_argument(
            "--encoders", default=DEFAULT_ENCODERS, type=parse_encoders,
            help="comma-separated DEPTHxWIDTH[/STRIDE]; the first is the reference",
        ),
    )

    import keras

    from keras_simclr import models

    def run_of(depth, width, stride):
        keras.utils.set_random_seed(0)
        encoder = models.resnet(depth, width, input_shape=(28, 28, 1), stem_stride=stride)
        return _measure.main_job_fit(encoder, args.batch_size, args.steps)

    runs = {_name(*encoder): run_of(*encoder) for encoder in args.encoders}
    timed = _measure.alternate(runs, args.rounds)
    _measure.print_against_first(f"ResNet training at 28 px, batch {args.batch_size}", timed)


if __name__ == "__main__":
    main()
