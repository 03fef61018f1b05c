"""What the batch size costs: training throughput at several batch sizes against a reference.

The main job's training (28 px grayscale Fashion-MNIST-sized images, `SimCLRAugment`
in tf.data, the probe on the clean images scored by its moving average, bfloat16 where
the CPU has it) on one encoder (`DEPTHxWIDTH` or `DEPTHxWIDTH/STRIDE`, as in
`encoder_cost.py`; the 30-minute recipe's half-width ResNet-18 by default), in one
process, for each batch size of `--batch_sizes`, timed in alternating rounds. Every
round of every batch size trains on the same number of pairs (`--steps` steps of the
first batch size, the reference of the ratios), so a ratio is the time an epoch takes
at the reference over the time it takes at that batch size. Prints pairs per second
of each and its ratio to the reference, by wall-clock and by CPU time. About 6 minutes
on 2 cores.

Usage:

    python benchmarks/batch_cost.py [--encoder=18x0.5] [--batch_sizes=256,128]
        [--steps=8] [--rounds=2]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _measure  # noqa: E402
import encoder_cost  # noqa: E402


def parse_encoder(text):
    """`"18x0.5"` -> `(18, 0.5, 1)`; one encoder, checked before any work."""
    encoders = encoder_cost.parse_encoders(text)
    if len(encoders) != 1:
        raise argparse.ArgumentTypeError(f"{text!r} names {len(encoders)} encoders; give one.")
    return encoders[0]


def parse_batch_sizes(text):
    """`"256,128"` -> `[256, 128]`: distinct positive integers, checked before any work."""
    try:
        sizes = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of batch sizes (e.g. 256,128)."
        ) from None
    if any(size < 2 for size in sizes):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a contrastive batch needs at least 2 images."
        )
    if len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"{text!r} names a batch size twice.")
    return sizes


def _add_arguments(parser):
    parser.add_argument("--encoder", default="18x0.5", type=parse_encoder,
                        help="DEPTHxWIDTH[/STRIDE]")
    parser.add_argument("--batch_sizes", default="256,128", type=parse_batch_sizes,
                        help="comma-separated; the first is the reference")


def _check(args):
    """Every batch size must split a round's pairs into whole batches."""
    if args.steps < 1:
        return f"--steps={args.steps}: time at least 1 step a round."
    pairs = args.steps * args.batch_sizes[0]
    for size in args.batch_sizes[1:]:
        if pairs % size:
            return (
                f"--steps={args.steps} of batch {args.batch_sizes[0]} is {pairs} pairs, "
                f"not a whole number of batches of {size}; choose --steps so that "
                f"{pairs} divides by every batch size."
            )
    return None


def main():
    args = _measure.main_job_arguments(
        __doc__, steps=8, rounds=2, add_arguments=_add_arguments, batch_size=False,
        check=_check,
    )
    pairs = args.steps * args.batch_sizes[0]

    import keras

    from keras_simclr import models

    depth, width, stride = args.encoder

    def run_of(batch_size):
        keras.utils.set_random_seed(0)
        encoder = models.resnet(depth, width, input_shape=(28, 28, 1), stem_stride=stride)
        return _measure.main_job_fit(
            encoder, batch_size, pairs // batch_size, probe_average=0.98
        )

    runs = {f"batch {size}": run_of(size) for size in args.batch_sizes}
    timed = _measure.alternate(runs, args.rounds)
    _measure.print_against_first(
        f"{encoder_cost._name(depth, width, stride)} at 28 px, {pairs} pairs a round", timed
    )


if __name__ == "__main__":
    main()
