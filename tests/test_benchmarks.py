"""The speed benchmarks: their counting and timing helpers, and a smoke run of the table.

No assertion here depends on how fast this machine is: the helpers are checked on
fake timings and exact FLOP counts, and the smoke run on the table it prints.
"""

import contextlib
import io
import pathlib
import re
import sys

import keras
import numpy as np
import pytest

from keras_simclr import models

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _measure  # noqa: E402
import pipeline_cost  # noqa: E402
import run_all  # noqa: E402
import train_throughput  # noqa: E402


# Counting FLOPs --------------------------------------------------------------------


def test_forward_flops_counts_two_per_multiply_add():
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)  # -> 5x5x8
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2)(x)  # -> 3x3x16
    x = keras.layers.BatchNormalization()(x)
    inner = keras.Model(inputs, x)
    outer_inputs = keras.Input((9, 9, 3))
    y = keras.layers.Flatten()(inner(outer_inputs))  # nested model counted through
    y = keras.layers.Dense(10)(y)
    model = keras.Model(outer_inputs, y)

    conv = 5 * 5 * (3 * 3 * 3) * 8
    depthwise = 3 * 3 * (3 * 3 * 8) * 2
    dense = (3 * 3 * 16) * 10
    assert _measure.forward_flops(model) == 2 * (conv + depthwise + dense)


@pytest.mark.parametrize(
    "depth, size, giga_multiply_adds",
    [
        # He et al. (2016) and the torchvision/keras references for ResNet-50 v1.5.
        (50, 224, (4.0, 4.2)),
        # The CIFAR-stem ResNet-18 of SimCLR's Appendix B.9 (0.56 G in the
        # CIFAR ResNet literature; the reference adds a 1x1 shortcut to stage 1).
        (18, 32, (0.55, 0.57)),
    ],
)
def test_forward_flops_of_resnets_match_published_counts(depth, size, giga_multiply_adds):
    encoder = models.resnet(depth, input_shape=(size, size, 3))
    low, high = giga_multiply_adds
    assert low * 2e9 < _measure.forward_flops(encoder) < high * 2e9


# Timing and tables -------------------------------------------------------------------


def test_alternate_interleaves_runs_and_takes_medians():
    calls = []
    timings = {"a": iter([(100, 2.0, 4.0), (100, 1.0, 2.0), (100, 4.0, 8.0)]),
               "b": iter([(50, 1.0, 1.0), (50, 1.0, 1.0), (50, 1.0, 1.0)])}

    def run(name):
        def call():
            calls.append(name)
            return next(timings[name])

        return call

    result = _measure.alternate({"a": run("a"), "b": run("b")}, rounds=3)
    assert calls == ["a", "b"] * 3
    assert result["a"]["rates"] == [50.0, 100.0, 25.0]
    assert result["a"]["rate"] == 50.0
    assert result["a"]["cpu_rate"] == 25.0
    assert result["b"]["rate"] == 50.0 and result["b"]["cpu_rate"] == 50.0


def test_table_row_derives_model_flops_and_fraction_of_peak():
    row = _measure.table_row(
        "training", "cfg", rate=20.0, rss=4096.4, flops_per_image=6.5e9,
        fp32_peak_gflops=200.0, cpu_share=0.9, ratio="1.00x",
    )
    assert len(row) == len(_measure.COLUMNS)
    assert row[2:] == ["20", "4096", "6.5", "130", "65%", "0.90", "1.00x"]


def test_run_plan_runs_a_configuration_once_and_survives_a_failing_child(tmp_path):
    counter = tmp_path / "runs.txt"
    script = tmp_path / "child.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(counter)!r}, 'a').write('x')\n"
        "config = json.loads(sys.argv[2])\n"
        "if config.get('fail'):\n"
        "    sys.exit('the child broke')\n"
        "print(json.dumps({'doubled': 2 * config['value']}))\n"
    )
    plan = [
        ("first", str(script), {"value": 3}),
        ("same", str(script), {"value": 3}),
        ("broken", str(script), {"fail": True}),
    ]
    results = _measure.run_plan(plan, log=io.StringIO())
    assert results["first"] == {"doubled": 6}
    assert results["same"] is results["first"]
    assert results["broken"]["error"] == "the child broke"
    assert counter.read_text() == "xx"


# Smoke run -----------------------------------------------------------------------------


def _tiny(config):
    """Shrinks a `--quick` child to seconds, keeping the code path it exercises."""
    if isinstance(config, list):  # loss_scaling.py's own arguments
        arguments = list(config)
        arguments[1] = str(min(int(arguments[1]), 128))
        arguments[arguments.index("--repeats") + 1] = "1"
        return arguments
    config = dict(config)
    if config.get("benchmark") == "augment":
        config.update(size=min(config["size"], 48), batch_size=8, batches=1, rounds=1)
        return config
    config.update(
        width_multiplier=1 / 16,
        image_size=16,
        batch_size=max(2, config["batch_size"] // 8),
        steps=2,
        rounds=1,
    )
    return config


@pytest.mark.slow
@pytest.mark.distributed
def test_run_all_prints_the_table_of_every_benchmark():
    plan = [
        (label, script, _tiny(config))
        for label, script, config in run_all.plan(quick=True, batch_sizes=(16, 32))
        if label not in ("augment_224", "loss_1024")
    ]
    results = _measure.run_plan(plan, log=io.StringIO())
    failures = {label: r["error"] for label, r in results.items() if "error" in r}
    assert not failures

    peaks = _measure.matmul_peaks({"size": 128, "repeats": 1})
    rows = (
        _measure.peak_rows(peaks, peaks)
        + run_all.augment_rows(results)
        + run_all.loss_rows(results, peaks["float32"])
        + train_throughput.rows(results, peaks["float32"])
        + pipeline_cost.scaling_rows(results, peaks["float32"])
    )
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        _measure.print_report(
            "Speed benchmarks (test)",
            _measure.machine(),
            _measure.load_average(),
            0.0,
            rows,
            run_all.targets(results, peaks["float32"], quick=True)
            + train_throughput.notes(results),
        )
    text = output.getvalue()

    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(_measure.COLUMNS) + " |"
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert all(len(row) == len(_measure.COLUMNS) for row in cells)
    benchmarks = [row[0] for row in cells]
    for benchmark, count in {
        "matmul peak": 2,
        "augmentation": 4,
        "loss": 1,
        "training": 7,
        "batch scaling": 2,
        "replica scaling": 2,
    }.items():
        assert benchmarks.count(benchmark) == count, benchmark
    column = {name: i for i, name in enumerate(_measure.COLUMNS)}
    for row in cells:
        if row[0] in ("training", "batch scaling", "replica scaling"):
            # Every training run has a throughput, a memory peak and model FLOP/s.
            assert float(row[column["images/s"]]) > 0
            assert re.fullmatch(r"(<= )?\d+", row[column["peak RSS (MiB)"]])
            assert row[column["of fp32 peak"]].endswith("%")
    ratios = [row[column["ratio"]] for row in cells]
    assert any(re.fullmatch(r"\d+\.\d\dx bare step \(\d+\.\d\dx by CPU time\)", r)
               for r in ratios)
    assert any(re.fullmatch(r"\d+\.\d\dx 1 device", r) for r in ratios)
    assert "non-finite" not in text
    assert text.count("Target:") == 3
    fake_224 = {"rates": {"batched": 1.9, "batched_parallel": 2.5, "per_example": 1.0}}
    lines = run_all.targets(
        {**results, "augment_224": fake_224}, peaks["float32"], quick=True
    )
    augment_lines = [line for line in lines if "SimCLRAugment at 224 px" in line]
    assert [line.endswith(", NOT met.") for line in augment_lines] == [True, False]
    assert "1.90x" in augment_lines[0] and "2.50x" in augment_lines[1]
    assert "TensorFlow" in text and "Load average" in text
    # XLA included (tensorflow#118701: NaN from fused batch norm under XLA).
    for result in results.values():
        assert np.isfinite(list(result.get("losses", {}).values())).all()
