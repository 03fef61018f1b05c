"""benchmarks/probe_replay.py: replaying a run's checkpoints to rank probe recipes."""

import argparse
import json
import pathlib
import re
import shutil
import sys

import numpy as np
import pytest

from keras_simclr import runner
from tests.tiny_runs import tiny_run

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import probe_replay  # noqa: E402


def test_recipes_parse_into_settings():
    assert probe_replay.parse_recipe("default") == ("default", {})
    assert probe_replay.parse_recipe("ema99:ema=0.99,lr=0.3,steps=2,schedule=constant") == (
        "ema99", {"ema": 0.99, "lr": 0.3, "steps": 2, "schedule": "constant"},
    )
    assert probe_replay.parse_recipe("w:optimizer=adamw,wd=0.001")[1]["wd"] == 0.001


@pytest.mark.parametrize(
    "text, message",
    [
        (":lr=0.1", "needs a name"),
        ("a:speed=2", "'speed=2' is not key=value"),
        ("a:lr", "'lr' is not key=value"),
        ("a:lr=fast", "lr must be a float, not 'fast'"),
        ("a:optimizer=rmsprop", "optimizer must be one of ['adam', 'adamw', 'sgd']"),
        ("a:ema=1", "ema must be in [0, 1)"),
        ("a:steps=0", "steps must be at least 1"),
        ("a:lr=-1", "lr must be positive"),
    ],
)
def test_bad_recipes_are_refused_with_the_fix(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        probe_replay.parse_recipe(text)


def test_two_recipes_of_one_name_are_refused(capsys):
    with pytest.raises(SystemExit) as raised:
        probe_replay.parse_args(["--model_dir=x", "--recipes", "a:lr=0.1", "a:lr=0.2"])
    assert raised.value.code == 2
    assert "each recipe needs its own name" in capsys.readouterr().err


def test_batch_order_reshuffles_each_epoch_and_drops_the_partial_batch():
    order = probe_replay._batch_order(num_examples=10, batch_size=3, total_steps=7, seed=0)
    assert order.shape == (7, 3)
    for epoch in (order[0:3], order[3:6]):  # 3 batches of 3 per epoch, one left over
        assert len(set(epoch.reshape(-1))) == 9
    assert not np.array_equal(order[0:3], order[3:6])


def test_missing_epoch_end_checkpoints_are_named_with_the_fix():
    with pytest.raises(ValueError, match=r"lacks the checkpoints of steps \[195\]"):
        probe_replay.check_coverage({25: "a", 50: "b", 390: "c", 585: "d"}, 585, 195, "dir")
    assert probe_replay.check_coverage({15: "a", 195: "b", 390: "c", 585: "d"}, 585, 195, "d") == [
        195, 390, 585,
    ]


def _separable(steps=60, batch=32, dim=8, seed=0):
    """Encodings two classes apart along the first axis, as the replay hands them over."""
    rng = np.random.default_rng(seed)

    def draw(n):
        labels = rng.integers(0, 2, n)
        h = rng.normal(size=(n, dim)).astype("float32")
        h[:, 0] += 4 * (2 * labels - 1)
        return h, labels

    h, labels = draw(steps * batch)
    eval_h, eval_labels = draw(200)
    plan = runner.plan(runner.Config(train_steps=steps, train_batch_size=batch))
    return {
        "h_steps": h.reshape(steps, batch, dim),
        "labels_steps": labels.reshape(steps, batch),
        "h_eval": {steps: eval_h},
        "eval_labels": eval_labels,
        "num_classes": 2,
        "plan": plan,
    }


def test_replayed_probe_learns_and_scores_its_moving_average_when_asked():
    replayed = _separable()
    config = runner.Config(probe_learning_rate=0.1)
    assert probe_replay.replay(replayed, {}, config)[-1] > 95
    assert probe_replay.replay(replayed, {"steps": 3, "optimizer": "sgd"}, config)[-1] > 95
    # An average that barely moves from the initial weights scores like them: the
    # probe starts with small random weights, near chance on two classes.
    frozen = probe_replay.replay(replayed, {"ema": 0.999999}, config)[-1]
    assert frozen < 80
    assert probe_replay.replay(replayed, {"ema": 0.9}, config)[-1] > 95


@pytest.mark.slow
@pytest.mark.e2e
def test_a_checkpointed_run_replays_every_recipe(tmp_path, capsys):
    model_dir = tiny_run(
        tmp_path, train_steps=16, checkpoint_steps=4, keep_checkpoint_max=10, log_every_steps=4
    )
    output = tmp_path / "replay.json"
    probe_replay.main(
        [f"--model_dir={model_dir}", f"--output={output}", "--recipes", "default", "ema:ema=0.9"]
    )
    record = json.loads(output.read_text())
    assert [row["name"] for row in record["recipes"]] == ["default", "ema"]
    assert 0 < record["linear"] <= 100
    assert len(record["run_probe"]) == 2  # the run's own probe at its 2 epochs' ends
    for row in record["recipes"]:
        assert len(row["curve"]) == 2 and all(0 <= a <= 100 for a in row["curve"])
        assert row["gap"] == pytest.approx(record["linear"] - row["curve"][-1])
    printed = capsys.readouterr().out
    assert "16 steps replayed" in printed and "| ema | ema=0.9 |" in printed

    # Kept encodings replay the same recipe to the same curve, and only for their run.
    kept = tmp_path / "encodings.npz"
    again = tmp_path / "again.json"
    for _ in range(2):  # written, then read
        probe_replay.main([
            f"--model_dir={model_dir}", f"--output={again}", f"--encodings={kept}",
            "--recipes", "default",
        ])
        assert json.loads(again.read_text())["recipes"][0]["curve"] == record["recipes"][0]["curve"]
    with pytest.raises(ValueError, match="not of .* at seed 1: name another file"):
        probe_replay.main([f"--model_dir={model_dir}", f"--encodings={kept}", "--seed=1"])

    # Without checkpoints at each epoch's end the replay stops before any work.
    with pytest.raises(ValueError, match="lacks the checkpoints of steps"):
        probe_replay.main([f"--model_dir={_thinned(model_dir, keep=(4, 12, 16))}"])


def _thinned(model_dir, keep):
    """A copy of the run whose checkpoint index keeps only the `keep` steps."""
    copy = model_dir.parent / "thinned"
    shutil.copytree(model_dir, copy)
    index = copy / "checkpoints" / "checkpoint"
    lines = index.read_text().splitlines()
    kept = [
        line for line in lines
        if line.startswith("model_checkpoint_path")
        or line.startswith("all_model_checkpoint_paths")
        and int(line.rsplit("-", 1)[-1].strip('"')) in keep
    ]
    index.write_text("\n".join(kept) + "\n")
    return copy
