"""The quality benchmark (benchmarks/quality_fashion_mnist.py): a tiny end-to-end run.

The tiny configuration trains for a few steps on a few hundred images, so nothing is
asserted about the accuracies beyond their range: the run must produce every row of
the table, a record that round-trips through JSON, and leave the caller's policy alone.
"""

import json
import pathlib
import sys

import keras
import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import quality_fashion_mnist  # noqa: E402
import study_table  # noqa: E402

_REPRESENTATIONS = ("SimCLR encoder", "random encoder", "raw pixels", "supervised encoder")


@pytest.mark.slow
@pytest.mark.e2e
def test_tiny_run_prints_every_row_and_writes_json(tmp_path, capsys):
    output = tmp_path / "quality.json"
    model_dir = tmp_path / "run"
    policy = keras.mixed_precision.global_policy().name

    record = quality_fashion_mnist.main(
        ["--config=tiny", f"--output={output}", f"--model_dir={model_dir}"]
    )

    printed = capsys.readouterr().out
    rows = record["rows"]
    # Pretraining, then linear + kNN for SimCLR, random and pixels, then supervised
    # training and linear + kNN on its frozen h.
    assert [row["representation"].split(" (")[0] for row in rows] == [
        "SimCLR encoder", *[name for name in _REPRESENTATIONS[:3] for _ in range(2)],
        "supervised encoder", *["supervised encoder's h"] * 2,
    ]
    assert [row["protocol"].split(" ")[0] for row in rows] == [
        "pretraining,", *["linear", "knn"] * 3, "supervised", "linear", "knn",
    ]
    scored = rows[1:]
    for row in scored:
        assert 0.0 <= row["top1"] <= row["top5"] <= 1.0, row
        assert row["num_test"] == 256
        assert row["seconds"] > 0
    assert all(row["num_train"] == 512 for row in rows)
    assert record["rows"][0]["details"]["history"]["loss"], "pretraining logged no loss"

    # The Markdown table holds a line per row, with the accuracies in percent.
    table_lines = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(table_lines) == 2 + len(rows)  # header and separator
    for row, line in zip(rows[1:], table_lines[3:]):
        assert f"| {100 * row['top1']:.2f} |" in line
    assert "Machine: " in printed and "load average" in printed
    assert "Target: SimCLR linear evaluation within 3 points" in printed

    written = json.loads(output.read_text())
    assert written["rows"] == json.loads(json.dumps(rows))
    assert written["config"]["name"] == "tiny"
    assert written["machine"]["cores"] >= 1
    assert keras.mixed_precision.global_policy().name == policy
    assert (model_dir / "encoder.keras").exists()

    # The study's run table reads the record: one row with its command and figures.
    for seed in (0, 1):
        (tmp_path / f"tiny_seed{seed}.json").write_text(output.read_text())
    paths = [str(tmp_path / f"tiny_seed{seed}.json") for seed in (0, 1)]
    table = study_table.table(study_table.load(paths)).splitlines()
    assert len(table) == 4 and table[2].startswith("| tiny_seed0 | ")
    assert f"| {100 * rows[1]['top1']:.2f} | {100 * rows[2]['top1']:.2f} |" in table[2]
    assert "--config=tiny" in table[2] and "--output" not in table[2]
    clean_probe = rows[0]["details"]["history"]["val_probe_accuracy"][-1]
    assert f"| {100 * clean_probe:.2f} |" in table[2]
    grouped = study_table.grouped(study_table.load(paths)).splitlines()
    assert grouped[2].startswith(f"| tiny | 2 | {100 * rows[1]['top1']:.2f} ± 0.00 |")


@pytest.mark.slow
@pytest.mark.e2e
def test_head_layers_are_evaluated_after_h_on_the_heads_outputs(tmp_path):
    record = quality_fashion_mnist.main(
        ["--config=tiny", "--baselines=", "--eval_head_layers=2,1", f"--model_dir={tmp_path}"]
    )

    rows = record["rows"]
    names = [row["representation"] for row in rows]
    assert names[1:3] == [names[0]] * 2  # h first, so the study's table reads it
    assert names[3:] == [f"{names[0]}, projection-head layer {k}" for k in (1, 1, 2, 2)]
    assert [row["protocol"].split(" ")[0] for row in rows[1:]] == ["linear", "knn"] * 3
    # Layer k's features are the head's own, in inference mode: z for the last layer.
    model = keras.models.load_model(tmp_path / "model.keras", compile=False)
    images = keras.random.uniform((4, 28, 28, 1), seed=0)
    h = model.encoder(images, training=False)
    for layer, expected in (
        (1, model.projection_head.get_layer("projection_head_relu1").output),
        (2, model.projection_head.output),
    ):
        features = quality_fashion_mnist._head_features(model, layer, (28, 28, 1))
        reference = keras.Model(model.projection_head.input, expected)(h, training=False)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(features(images, training=False)),
            keras.ops.convert_to_numpy(reference), rtol=1e-5, atol=1e-6,
        )
        width = model.encoder.output_shape[-1] if layer == 1 else 128
        assert features.output_shape[-1] == width


@pytest.mark.parametrize(
    "flags, field, expected",
    [
        (["--num_proj_layers=linear"], "num_proj_layers", 1),
        (["--num_proj_layers=0"], "num_proj_layers", 0),
        (["--color_jitter_strength=0"], "color_jitter_strength", 0.0),
        (["--temperature=0.5"], "temperature", 0.5),
        (["--crop_scale=0.2,1"], "crop_scale", (0.2, 1.0)),
        (["--use_blur"], "use_blur", True),
        (["--use_blur=false"], "use_blur", False),
        ([], "use_blur", None),
        (["--optimizer=momentum"], "optimizer", "momentum"),
        (["--objective=paper"], "objective", "paper"),
        (["--probe_learning_rate=0.03"], "probe_learning_rate", 0.03),
        (["--probe_average=0"], "probe_average", 0.0),
        ([], "probe_average", 0.98),
        (["--eval_head_layers=2,1"], "eval_head_layers", (1, 2)),
        (["--config=long"], "width_multiplier", 0.5),
        ([], "epochs", quality_fashion_mnist.CONFIGS["quick"].epochs),
    ],
)
def test_flags_override_the_preset_and_reach_the_pretraining_config(flags, field, expected):
    config = quality_fashion_mnist.resolve_config(quality_fashion_mnist.parse_args(flags))
    assert getattr(config, field) == expected
    pretraining = quality_fashion_mnist.pretraining_config(config, "unused")
    key = quality_fashion_mnist._job_fields().get(field)
    if key:  # a pretraining knob, not one of the benchmark's own
        assert getattr(pretraining, key) == expected


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num_proj_layers=deep"], "num_proj_layers"),
        (["--supervised_augment=mixup"], "supervised_augment"),
        (["--knn_k=0"], "knn_k"),
        (["--eval_head_layers=3"], r"layers \[3\].*layers 1 to 2"),
        (["--eval_head_layers=1", "--num_proj_layers=none"], "no projection head"),
        (["--eval_head_layers=first"], "eval_head_layers='first'"),
    ],
)
def test_invalid_flags_are_rejected_with_the_received_value(flags, message):
    with pytest.raises(ValueError, match=message):
        quality_fashion_mnist.resolve_config(quality_fashion_mnist.parse_args(flags))


def test_baselines_flag_selects_in_table_order_and_rejects_unknown_names():
    assert quality_fashion_mnist.resolve_baselines("supervised,random") == (
        "random", "supervised",
    )
    assert quality_fashion_mnist.resolve_baselines("") == ()
    with pytest.raises(ValueError, match="pixels"):
        quality_fashion_mnist.resolve_baselines("pixels")


def test_targets_report_margins_and_whether_they_are_met():
    def row(representation, protocol, top1):
        return {"representation": representation, "protocol": protocol, "top1": top1}

    lines = quality_fashion_mnist.target_lines(
        [
            row("SimCLR encoder", "linear (lbfgs)", 0.88),
            row("random encoder", "linear (lbfgs)", 0.875),
            row("raw pixels (784)", "linear (lbfgs)", 0.84),
            # Its frozen h's rows do not stand in for the supervised accuracy.
            row("supervised encoder's h (ResNet)", "linear (lbfgs)", 0.95),
            row("supervised encoder", "supervised (100% labels)", 0.92),
            row("supervised encoder's h (ResNet)", "knn (k=200, T=0.1)", 0.90),
        ]
    )
    assert lines == [
        "Target: SimCLR linear evaluation clearly above raw pixels (>= 1 point): "
        "+4.00 points, met.",
        "Target: SimCLR linear evaluation clearly above the random encoder (>= 1 point): "
        "+0.50 points, NOT met.",
        "Target: SimCLR linear evaluation within 3 points of the supervised encoder: "
        "4.00 points below, NOT met.",
    ]
