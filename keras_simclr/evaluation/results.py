"""Evaluation records: one `EvaluationResult` per (data set, protocol), kept in a
`results.json` file and printed as a table.

One record per (data set, protocol) pair is the unit the paper's tables report
(Tables 6-8: linear evaluation, semi-supervised fine-tuning).
"""

import dataclasses
import json

import numpy as np
import tensorflow as tf
from keras_simclr import files


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """The outcome of one evaluation protocol on one dataset.

    One record per (dataset, protocol) pair, the unit the paper's tables report
    (Tables 6-8: linear evaluation, semi-supervised fine-tuning). `write_results` merges
    records into a `results.json` file, `format_table` prints them.

    Args:
        dataset: name of the dataset the numbers are on.
        protocol: the protocol and the settings that distinguish it, e.g.
            `"linear (lbfgs)"` or `"fine-tune (10% labels)"`.
        accuracy: top-1 test accuracy in [0, 1].
        top5_accuracy: top-5 test accuracy in [0, 1] (top-`num_classes` when there
            are fewer than 5 classes, so 1.0 then).
        num_train: number of labelled training examples the protocol used.
        num_test: number of test examples.
        epochs: training epochs, or `None` for protocols that do not train by
            epochs (kNN, L-BFGS).
        seconds: wall-clock time of the whole protocol, feature extraction included.
        details: protocol-specific settings and diagnostics (JSON-serialisable).

    A record holds numbers only: `fine_tune` and `supervised_baseline` return the
    classifier they train beside it, for the caller to keep or drop.

    Example:

    >>> result = EvaluationResult("cifar10", "knn (k=200, T=0.1)", 0.9, 0.99, 50000, 10000)
    >>> EvaluationResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    True
    """

    dataset: str
    protocol: str
    accuracy: float
    top5_accuracy: float
    num_train: int
    num_test: int
    epochs: int | None = None
    seconds: float = 0.0
    details: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for name in ("accuracy", "top5_accuracy"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"`{name}` must be a fraction in [0, 1]. Received: {name}={value}"
                )

    def to_dict(self):
        """Returns the record as a JSON-serialisable dict."""
        return {
            field.name: _jsonable(getattr(self, field.name)) for field in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, record):
        """The `EvaluationResult` of a `to_dict()` record (a `results.json` entry), or
        of one that `keras.saving.serialize_keras_object` wrote before it was a plain
        record."""
        return cls(**(record.get("config", record) if "class_name" in record else record))


def write_results(results, path):
    """Writes evaluation records to a JSON file, merging with what it already holds.

    A record replaces an earlier one with the same `(dataset, protocol)`, so re-running
    an evaluation updates its line; other records are kept in their order and new ones
    are appended. The file is replaced atomically; `path` may be local or any
    filesystem `tf.io.gfile` supports (e.g. `gs://` for a TPU `model_dir`).

    Args:
        results: an `EvaluationResult` or an iterable of them.
        path: the file to write, conventionally `<model_dir>/results.json`.

    Returns:
        The list of all records now in the file.

    Example:

    >>> result = EvaluationResult("toy", "knn (k=5, T=0.1)", 1.0, 1.0, 10, 10)
    >>> records = write_results(result, "results.json")
    """
    results = _check_results(results)
    merged = read_results(path) if tf.io.gfile.exists(path) else []
    for result in results:
        key = (result.dataset, result.protocol)
        positions = [i for i, old in enumerate(merged) if (old.dataset, old.protocol) == key]
        if positions:
            merged[positions[0]] = result
        else:
            merged.append(result)
    text = json.dumps({"results": [r.to_dict() for r in merged]}, indent=2) + "\n"
    files.write_atomic(path, text)
    return merged


def read_results(path):
    """Reads the records a `write_results` call stored in `path`.

    Args:
        path: a `results.json` file.

    Returns:
        A list of `EvaluationResult`.
    """
    with tf.io.gfile.GFile(path, "r") as f:
        content = json.load(f)
    return [EvaluationResult.from_dict(record) for record in content["results"]]


def format_table(results):
    """Formats evaluation records as a plain-text table, one row per record.

    Args:
        results: an `EvaluationResult` or an iterable of them.

    Returns:
        The table as a string (accuracies in percent), ready to print.

    Example:

    >>> print(format_table(EvaluationResult("toy", "linear (lbfgs)", 0.9, 1.0, 10, 10)))
    dataset  protocol        top-1 %  top-5 %  train  test  epochs  time
    -------  --------------  -------  -------  -----  ----  ------  ----
    toy      linear (lbfgs)    90.00   100.00     10    10       -  0.0s
    """
    results = _check_results(results)
    header = ("dataset", "protocol", "top-1 %", "top-5 %", "train", "test", "epochs", "time")
    rows = [
        (
            r.dataset,
            r.protocol,
            f"{100 * r.accuracy:.2f}",
            f"{100 * r.top5_accuracy:.2f}",
            str(r.num_train),
            str(r.num_test),
            "-" if r.epochs is None else str(r.epochs),
            f"{r.seconds:.1f}s",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    # Text columns read best left-aligned, numbers right-aligned.
    align = ["<", "<", ">", ">", ">", ">", ">", ">"]
    lines = [
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _check_results(results):
    if isinstance(results, EvaluationResult):
        return [results]
    results = list(results)
    for result in results:
        if not isinstance(result, EvaluationResult):
            raise ValueError(
                "`results` must be `EvaluationResult`s. Received an element of type "
                f"{type(result).__name__}"
            )
    return results


def _top_k_accuracy(scores, labels, k):
    if k == 1:
        return float(np.mean(np.argmax(scores, axis=1) == labels))
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value

