"""Prints the run table of the quality study from the JSON records of its runs.

Every run of `quality_fashion_mnist.py --output=DIR/NAME.json` is one row: its
command, the commit it ran, the pretraining time and pairs per second, and the
linear and kNN top-1 accuracy (on the split the command names: `train[50000:]`,
a validation split of the training set, for the study; `test` for the confirmed
recipes). `--group` adds mean and standard deviation over runs whose names differ
only in a `_seedN` suffix.

Usage:

    python benchmarks/study_table.py docs/quality_study/*.json
    python benchmarks/study_table.py --group docs/quality_study/*.json
"""

import argparse
import json
import os
import re
import statistics


def load(paths):
    """The records of `paths`, each with the fields the table shows."""
    rows = []
    for path in paths:
        with open(path) as f:
            record = json.load(f)
        pretraining = record["rows"][0]
        accuracy = {
            row["protocol"].split(" ")[0]: row["top1"]
            for row in record["rows"][1:3]
        }
        history = pretraining["details"].get("history", {})
        probe = history.get("probe_accuracy", [None])[-1]
        # Scored on the clean images of the evaluation split, from a864034 on.
        clean_probe = history.get("val_probe_accuracy", [None])[-1]
        command = record["command"] or ""
        command = re.sub(r" --output=\S+", "", command)
        rows.append(
            {
                "name": os.path.splitext(os.path.basename(path))[0],
                "command": command,
                "commit": (record["machine"].get("commit") or "?")[:7],
                "date": record["machine"]["date"][:16],
                "pretrain_seconds": pretraining["seconds"],
                "total_seconds": record["total_seconds"],
                "pairs_per_second": pretraining["details"]["images_per_second"],
                "linear": accuracy.get("linear"),
                "knn": accuracy.get("knn"),
                "probe": probe,
                "clean_probe": clean_probe,
            }
        )
    return rows


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}"


def table(rows):
    lines = [
        "| run | linear % | kNN % | probe % (last epoch) | probe on clean images % (end) "
        "| pretraining s | total s | pairs/s | commit | command |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {_percent(row['linear'])} | {_percent(row['knn'])} | "
            f"{_percent(row['probe'])} | {_percent(row['clean_probe'])} | "
            f"{row['pretrain_seconds']:.0f} | "
            f"{row['total_seconds']:.0f} | {row['pairs_per_second']:.0f} | "
            f"{row['commit']} | `{row['command']}` |"
        )
    return "\n".join(lines)


def grouped(rows):
    groups = {}
    for row in rows:
        groups.setdefault(re.sub(r"_seed\d+$", "", row["name"]), []).append(row)
    lines = [
        "| recipe | runs | linear % | kNN % | pretraining s | pairs/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, members in groups.items():
        cells = []
        for key in ("linear", "knn"):
            values = [100 * m[key] for m in members if m[key] is not None]
            spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.2f}{spread}" if values else "-")
        seconds = statistics.mean(m["pretrain_seconds"] for m in members)
        pairs = statistics.mean(m["pairs_per_second"] for m in members)
        lines.append(
            f"| {name} | {len(members)} | {cells[0]} | {cells[1]} | {seconds:.0f} | {pairs:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="JSON records written with --output")
    parser.add_argument("--group", action="store_true", help="mean ± std over _seedN runs")
    args = parser.parse_args(argv)
    rows = load(args.paths)
    print(grouped(rows) if args.group else table(rows))


if __name__ == "__main__":
    main()
