"""kNN accuracy against the number of neighbours: a run's encoder and the raw pixels.

The project's kNN protocol lets the k=200 most cosine-similar training images vote,
each with weight exp(similarity / 0.1) (Wu et al., 2018; `keras_simclr.evaluation.
knn_eval`). How many neighbours vote changes the accuracy of every representation, not
only of a learned one. This script scores the frozen h of a finished `simclr` run and
the raw pixels of the same images at several k, on the run's own splits (the
`train_split` and `eval_split` of its config.json), so that the protocol's k can be
read against both. It trains nothing: feature extraction and the votes take a minute.

Usage:

    python benchmarks/knn_neighbours.py --model_dir=DIR [--k=1,5,10,20,50,100,200]
        [--temperature=0.1] [--output=knn.json]
"""

import argparse
import dataclasses
import json
import os
import sys
import time

DEFAULT_KS = (1, 5, 10, 20, 50, 100, 200)


def parse_ks(text):
    """`1,5,200` -> `[1, 5, 200]`, refusing anything but whole numbers >= 1."""
    try:
        ks = [int(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--k takes comma-separated whole numbers, e.g. 1,20,200. Received: {text!r}"
        ) from None
    if min(ks) < 1:
        raise argparse.ArgumentTypeError(f"--k values must be at least 1. Received: {text!r}")
    return sorted(set(ks))


def parse_temperature(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--temperature must be > 0. Received: {text!r}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="A finished `simclr` run's folder.")
    parser.add_argument(
        "--k", type=parse_ks, default=list(DEFAULT_KS), help="Neighbours, comma-separated."
    )
    parser.add_argument(
        "--temperature", type=parse_temperature, default=0.1, help="Softness of the vote."
    )
    parser.add_argument("--output", help="Writes the table as JSON to this file.")
    return parser.parse_args(argv)


def read_run(model_dir):
    """The run's `runner.Config` (its model_dir this folder), checked before any work."""
    from keras_simclr import runner

    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        raise ValueError(f"{model_dir!r} has no config.json: it is not a `simclr` run's model_dir.")
    if not os.path.exists(os.path.join(model_dir, "encoder.keras")):
        raise ValueError(
            f"{model_dir!r} has no encoder.keras: the run has not finished. Rerun its "
            "command (it resumes) and then this script."
        )
    with open(path) as f:
        return dataclasses.replace(runner.Config(**json.load(f)), model_dir=model_dir)


def features(config, plan_):
    """`{"h": ..., "raw pixels": ...}`, each `((train_x, train_y), (test_x, test_y))`."""
    import keras

    from keras_simclr import evaluation
    from keras_simclr import runner

    encoder = keras.models.load_model(os.path.join(config.model_dir, "encoder.keras"))
    (train, preprocess), (test, _) = (
        runner.evaluation_data(config, plan_, split)
        for split in (config.train_split, config.eval_split)
    )
    flatten = keras.layers.Flatten()  # the raw pixels, as the quality benchmark's baseline
    return {
        "h": tuple(
            evaluation.extract_features(encoder, data, preprocess, config.eval_batch_size)
            for data in (train, test)
        ),
        "raw pixels": tuple(
            evaluation.extract_features(flatten, data, None, config.eval_batch_size)
            for data in (train, test)
        ),
    }


def main(argv=None):
    args = parse_args(argv)
    config = read_run(args.model_dir)
    from keras_simclr import evaluation
    from keras_simclr import runner

    plan_ = runner.plan(config)
    num_train = plan_.info.num_examples
    if max(args.k) > num_train:
        raise ValueError(
            f"--k asks for {max(args.k)} neighbours, but the run's training split "
            f"({config.train_split!r}) holds {num_train} images: pass smaller values."
        )
    start = time.perf_counter()
    encoded = features(config, plan_)
    print(f"# {args.model_dir}: neighbours from {config.train_split!r}, scored on "
          f"{config.eval_split!r}, T={args.temperature}; features in "
          f"{time.perf_counter() - start:.0f} s")
    print("| k | " + " | ".join(f"{name} kNN %" for name in encoded) + " |")
    print("| ---: |" + " ---: |" * len(encoded))
    rows = []
    for k in args.k:
        row = {"k": k}
        for name, (train, test) in encoded.items():
            result = evaluation.knn_eval(
                None, train, test, k=k, temperature=args.temperature,
                dataset_name=config.dataset,
            )
            row[name] = round(100 * result.accuracy, 2)
        print(f"| {k} | " + " | ".join(f"{row[name]:.2f}" for name in encoded) + " |", flush=True)
        rows.append(row)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(
                dict(
                    benchmark="knn_neighbours",
                    command="python benchmarks/knn_neighbours.py " + " ".join(
                        sys.argv[1:] if argv is None else argv
                    ),
                    model_dir=args.model_dir, train_split=config.train_split,
                    eval_split=config.eval_split, temperature=args.temperature, rows=rows,
                ),
                f, indent=2,
            )
    return rows


if __name__ == "__main__":
    main()
