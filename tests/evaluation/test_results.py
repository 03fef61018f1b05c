"""keras_simclr.evaluation.results: records round-trip, merge into results.json and
print as a table; top-k accuracy against NumPy."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from keras_simclr import evaluation
from keras_simclr.evaluation import results


def _result(protocol="linear (lbfgs)", accuracy=0.75, dataset="toy"):
    return evaluation.EvaluationResult(
        dataset=dataset, protocol=protocol, accuracy=accuracy, top5_accuracy=0.97,
        num_train=100, num_test=50, epochs=None, seconds=1.5,
        details={"l2": np.float64(1e-4), "history": {"loss": [np.float32(2.0), 1.5]}},
    )


def test_evaluation_result_round_trips_as_json_and_reads_old_keras_records():
    result = _result()
    config = json.loads(json.dumps(result.to_dict()))
    assert evaluation.EvaluationResult.from_dict(config) == result
    # Every field is JSON: the record holds no model.
    assert set(config) == {f.name for f in dataclasses.fields(result)}
    assert all(isinstance(value, (str, int, float, dict, type(None))) for value in config.values())
    # A plain record, not a Keras object; what serialize_keras_object wrote still loads.
    assert keras.saving.get_registered_object("keras_simclr>EvaluationResult") is None
    old = {"module": "keras_simclr.evaluation.results", "class_name": "EvaluationResult",
           "config": config, "registered_name": "keras_simclr>EvaluationResult"}
    assert evaluation.EvaluationResult.from_dict(old) == result
    with pytest.raises(ValueError, match="`accuracy` must be a fraction in"):
        evaluation.EvaluationResult("toy", "knn", 75.0, 0.9, 1, 1)


def test_write_results_merges_and_reads_back(tmp_path):
    path = str(tmp_path / "run" / "results.json")
    evaluation.write_results([_result(), _result("knn (k=200, T=0.1)", 0.6)], path)
    merged = evaluation.write_results(
        [_result(accuracy=0.8), _result(dataset="other")], path
    )
    read = evaluation.read_results(path)
    assert read == merged
    assert [(r.dataset, r.protocol, r.accuracy) for r in read] == [
        ("toy", "linear (lbfgs)", 0.8),
        ("toy", "knn (k=200, T=0.1)", 0.6),
        ("other", "linear (lbfgs)", 0.75),
    ]
    assert not (tmp_path / "run" / "results.json.tmp").exists()


def test_format_table_lists_every_record():
    table = evaluation.format_table([_result(), _result("fine-tune (1% labels)", 0.5)])
    lines = table.splitlines()
    assert len(lines) == 4 and set(lines[1]) <= {"-", " "}
    assert "75.00" in lines[2] and "97.00" in lines[2] and "1.5s" in lines[2]
    assert lines[3].split()[:3] == ["toy", "fine-tune", "(1%"]
    assert len({len(line) for line in lines[:2]}) == 1


def test_top5_accuracy_against_numpy():
    scores = np.random.default_rng(0).normal(size=(500, 20))
    labels = np.random.default_rng(1).integers(0, 20, 500)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    expected = np.mean([label in row for label, row in zip(labels, top5)])
    assert results._top_k_accuracy(scores, labels, 5) == pytest.approx(expected)
    assert results._top_k_accuracy(scores, labels, 1) == np.mean(scores.argmax(1) == labels)


def test_a_result_saved_by_keras_saving_still_loads():
    # As keras.saving serialised it while EvaluationResult was a registered Keras
    # object (here from when keras_simclr/evaluation.py was one module).
    saved = {
        "module": "keras_simclr.evaluation",
        "class_name": "EvaluationResult",
        "config": {
            "dataset": "toy",
            "protocol": "knn (k=5, T=0.1)",
            "accuracy": 0.5,
            "top5_accuracy": 1.0,
            "num_train": 10,
            "num_test": 10,
            "epochs": None,
            "seconds": 0.0,
            "details": {},
        },
        "registered_name": "keras_simclr>EvaluationResult",
    }
    cls = evaluation.EvaluationResult
    assert keras.saving.get_registered_object(saved["registered_name"]) is None
    assert cls.from_dict(saved) == cls(
        "toy", "knn (k=5, T=0.1)", 0.5, 1.0, 10, 10
    )
