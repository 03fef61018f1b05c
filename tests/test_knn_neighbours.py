"""benchmarks/knn_neighbours.py: kNN against the number of neighbours, h and raw pixels."""

import argparse
import json
import pathlib
import sys

import numpy as np
import pytest

from keras_simclr import data
from tests.tiny_runs import tiny_run

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import knn_neighbours  # noqa: E402


def test_neighbour_counts_parse_sorted_and_unique():
    assert knn_neighbours.parse_ks("200,1,20,1") == [1, 20, 200]


@pytest.mark.parametrize(
    "text, message", [("1,five", "comma-separated whole numbers"), ("0,5", "at least 1")]
)
def test_bad_neighbour_counts_are_refused(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        knn_neighbours.parse_ks(text)


def test_a_folder_that_is_not_a_finished_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="has no config.json"):
        knn_neighbours.main([f"--model_dir={tmp_path}"])
    (tmp_path / "config.json").write_text(json.dumps({"mode": "train"}))
    with pytest.raises(ValueError, match="has no encoder.keras: the run has not finished"):
        knn_neighbours.main([f"--model_dir={tmp_path}"])


@pytest.mark.slow
@pytest.mark.e2e
def test_a_finished_run_is_scored_at_each_k(tmp_path, capsys):
    model_dir = tiny_run(tmp_path)
    # Moved after training: the folder given is the one read.
    moved = tmp_path / "moved"
    model_dir.rename(moved)
    output = tmp_path / "knn.json"
    rows = knn_neighbours.main([f"--model_dir={moved}", "--k=1,20", f"--output={output}"])
    assert [row["k"] for row in rows] == [1, 20]
    for row in rows:
        assert 10 < row["h"] <= 100 and 10 < row["raw pixels"] <= 100  # 10 classes
    record = json.loads(output.read_text())
    assert record["rows"] == rows and record["eval_split"] == "test"
    printed = capsys.readouterr().out
    assert "| k | h kNN % | raw pixels kNN % |" in printed
    assert f"| 20 | {rows[1]['h']:.2f} | {rows[1]['raw pixels']:.2f} |" in printed

    # k=1 on the raw pixels is the label of the most cosine-similar training image.
    (train_x, train_y), (test_x, test_y) = (
        data.load_fashion_mnist(split=split) for split in ("train[:512]", "test[:256]")
    )
    train_x, test_x = (x.reshape(len(x), -1).astype("float64") for x in (train_x, test_x))
    train_x, test_x = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (train_x, test_x))
    nearest = train_y[np.argmax(test_x @ train_x.T, axis=1)]
    assert rows[0]["raw pixels"] == pytest.approx(100 * np.mean(nearest == test_y), abs=0.01)

    # More neighbours than training images are refused before any work.
    with pytest.raises(ValueError, match="holds 512 images: pass smaller values"):
        knn_neighbours.main([f"--model_dir={moved}", "--k=513"])
