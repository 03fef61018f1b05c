"""`keras_simclr.train`: what the job writes while it trains."""

import csv

import numpy as np
import pytest

from idx_files import write_real_subset
from keras_simclr import evaluation
from keras_simclr import train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_real_subset(tmp_path_factory.mktemp("fashion_mnist"), sizes=(512, 256))


def test_history_has_rows_every_few_steps_with_window_means(data_dir, tmp_path):
    config = train.Config(
        mode="train", data_dir=str(data_dir), model_dir=str(tmp_path / "run"),
        train_batch_size=64, train_steps=12, width_multiplier=0.125, proj_out_dim=16,
        mixed_precision="off", log_every_steps=3, checkpoint_epochs=0, verbose=0,
    )
    _, history = train.pretrain(config)
    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    # 8 steps per epoch: rows at steps 3 and 6, the epoch's end (8), then 9 and 12.
    assert [int(row["step"]) for row in rows] == [3, 6, 8, 9, 12]
    np.testing.assert_allclose([float(r["epoch"]) for r in rows], [3 / 8, 6 / 8, 1, 9 / 8, 12 / 8])
    for name in ("loss", "contrastive_accuracy", "probe_accuracy"):
        windows = np.array([float(row[name]) for row in rows])
        # The windows of an epoch, weighted by their steps, give the epoch's mean.
        first, second = np.dot(windows[:3], [3, 3, 2]) / 8, np.dot(windows[3:], [1, 3]) / 4
        np.testing.assert_allclose([first, second], history[name], rtol=1e-4, err_msg=name)
    path = evaluation.plot_training_curves(
        str(tmp_path / "run" / "history.csv"), str(tmp_path / "curves.png")
    )
    assert path.endswith("curves.png")


def test_curves_of_a_resumed_run_keep_the_last_row_of_a_step(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "step,epoch,loss\n25,0.25,9.0\n50,0.5,8.0\n25,0.25,7.5\n50,0.5,7.0\n75,0.75,6.0\n"
    )
    logs = evaluation._history_logs(str(path))
    assert evaluation._last_row_per_step(logs) == {
        "step": [25.0, 50.0, 75.0], "epoch": [0.25, 0.5, 0.75], "loss": [7.5, 7.0, 6.0]
    }
    evaluation.plot_training_curves(str(path), str(tmp_path / "curves.png"), ("loss",))
