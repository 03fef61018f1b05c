"""The speed benchmarks: their counting and timing helpers, and the command CI runs.

No assertion here depends on how fast this machine is: the helpers are checked on
fake timings and exact FLOP counts, and `python benchmarks/run_all.py --quick` on the
table it prints (which also goes to the test log).
"""

import io
import pathlib
import re
import subprocess
import sys

import keras
import pytest

from keras_simclr import models

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _measure  # noqa: E402
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


# Targets ---------------------------------------------------------------------------


def _fake_results(fit, fit_augment, bare, augment_224=None):
    def timed(rate):
        return {"rate": rate, "cpu_rate": rate, "rates": [rate]}

    results = {
        "resnet18": {
            "config": train_throughput.baseline_config(False),
            "forward_flops_per_view": 1e9,
            "modes": {"fit": timed(fit), "fit_augment": timed(fit_augment),
                      "bare": timed(bare)},
        }
    }
    if augment_224:
        results["augment_224"] = {"rates": augment_224}
    return results


def test_targets_say_which_are_met_with_the_measured_figures():
    # 20 images/s x 6 GFLOP = 120 GFLOP/s of a 200 GFLOP/s peak: 60%.
    results = _fake_results(
        fit=20.0, fit_augment=16.0, bare=20.0,
        augment_224={"batched": 1.9, "batched_parallel": 2.5, "per_example": 1.0},
    )
    lines = run_all.targets(results, 200.0, quick=False)
    assert len(lines) == 5
    peak, pipeline, overhead, one_batch, in_flight = lines
    assert "60% of the peak, met." in peak
    assert "0.80x (0.80x by CPU time), NOT met." in pipeline
    assert "1.00x (1.00x by CPU time), met." in overhead
    assert one_batch.endswith("1.90x, NOT met.") and in_flight.endswith("2.50x, met.")
    quick = run_all.targets(results, 200.0, quick=True)
    assert quick[:5] == lines and "full configurations only" in quick[5]


def test_targets_report_a_failed_baseline_instead_of_crashing():
    lines = run_all.targets({"resnet18": {"error": "out of memory"}}, 200.0, quick=False)
    assert lines == ["Targets: the baseline configuration failed (out of memory)."]


# The command CI runs ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.distributed
def test_run_all_quick_prints_the_table_of_every_benchmark(capsys):
    """`python benchmarks/run_all.py --quick`, as issue 10 asks CI to run it (3-8 min).

    The table goes to the test log as well; no assertion depends on the speeds.
    """
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick"],
        capture_output=True, text=True, timeout=900,
    )
    text = completed.stdout
    with capsys.disabled():
        print("\n" + text)
    assert completed.returncode == 0, completed.stderr[-3000:]

    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(_measure.COLUMNS) + " |"
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert all(len(row) == len(_measure.COLUMNS) for row in cells)
    column = {name: i for i, name in enumerate(_measure.COLUMNS)}
    assert not [row for row in cells if row[column["ratio"]].startswith("failed")]
    benchmarks = [row[0] for row in cells]
    for benchmark, count in {
        "matmul peak": 2,
        "augmentation": 8,
        "loss": 2,
        "training": 7,
        "batch scaling": 3,
        "replica scaling": 2,
    }.items():
        assert benchmarks.count(benchmark) == count, benchmark
    for row in cells:
        if row[0] in ("augmentation", "loss", "training", "batch scaling", "replica scaling"):
            # Every run has a throughput and a memory peak; training has model FLOP/s.
            assert float(row[column["images/s"]]) > 0
            assert re.fullmatch(r"(<= |\+)?\d+", row[column["peak RSS (MiB)"]])
        if row[0] in ("training", "batch scaling", "replica scaling"):
            assert row[column["of fp32 peak"]].endswith("%")
    ratios = [row[column["ratio"]] for row in cells]
    assert any(re.fullmatch(r"\d+\.\d\dx bare step \(\d+\.\d\dx by CPU time\)", r)
               for r in ratios)
    assert any(re.fullmatch(r"\d+\.\d\dx 1 device", r) for r in ratios)
    assert any(re.fullmatch(r"\d+\.\d\dx per-example", r) for r in ratios)
    # The XLA runs included (tensorflow#118701: NaN from fused batch norm under XLA).
    assert "non-finite" not in text
    assert text.count("Target:") == 5
    assert "TensorFlow" in text and "Load average" in text


@pytest.mark.slow
def test_library_overhead_prints_both_ratios():
    # The README's overhead figures come from this script; no assertion on speeds.
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "library_overhead.py"), "--quick"],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    assert lines[0] == "# ResNet-18 0.25x 32px b32 fp32"
    for label in ("SimCLR.fit, pre-made views", "SimCLR.fit, SimCLRAugment in tf.data"):
        (line,) = [line for line in lines if line.startswith(label + ": ")]
        ratio, _, cpu = line[len(label) + 2:].partition(" bare step (")
        assert float(ratio.rstrip("x")) > 0 and cpu.endswith("x by CPU time)"), line


def _printed_lines(script, *arguments):
    """The stdout lines of `benchmarks/<script>` run with `arguments`; it must succeed."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.splitlines()


@pytest.mark.slow
def test_probe_cost_prints_both_rates_and_their_ratio():
    # The README's figure for the probe on clean images comes from this script.
    lines = _printed_lines("probe_cost.py", "--steps=2", "--rounds=1", "--batch_size=32")
    assert lines[0].startswith("# main job's training, batch 32")
    names = ("views", "images", "images, averaged")
    for i, name in enumerate(names):
        assert re.fullmatch(
            rf"probe on the {name}: \d+ pairs/s \(\d+ per CPU-second\)", lines[1 + i]
        ), lines
    ratio = r": \d+\.\d\dx \(\d+\.\d\dx by CPU time\)"
    assert re.fullmatch(r"images / views" + ratio, lines[4]), lines
    assert re.fullmatch(r"images, averaged / images" + ratio, lines[5]), lines


def _assert_rates_against_first(lines, names):
    """`lines[1:]` are `NAME: R pairs/s, X.XXx (Y.YYx by CPU time)`, one per name in
    order, the first the reference at 1.00x."""
    for line, name in zip(lines[1:], names, strict=True):
        assert re.fullmatch(
            rf"{re.escape(name)}: \d+ pairs/s, \d+\.\d\dx \(\d+\.\d\dx by CPU time\)", line
        ), lines
    assert "1.00x (1.00x by CPU time)" in lines[1]


@pytest.mark.slow
def test_encoder_cost_prints_each_encoders_rate_and_ratio():
    # The study's throughput figures for the stem at stride 2 and for depth come from
    # this script.
    lines = _printed_lines(
        "encoder_cost.py", "--steps=1", "--rounds=1", "--batch_size=16",
        "--encoders=18x0.5,18x0.5/2,34x0.25",
    )
    assert lines[0].startswith("# ResNet training at 28 px, batch 16")
    names = ("ResNet-18 x0.5, stem stride 1", "ResNet-18 x0.5, stem stride 2",
             "ResNet-34 x0.25, stem stride 1")
    _assert_rates_against_first(lines, names)


@pytest.mark.slow
def test_batch_cost_prints_each_batch_sizes_rate_and_ratio():
    # The study's throughput figures for the batch size at the half width come from
    # this script.
    lines = _printed_lines(
        "batch_cost.py", "--encoder=18x0.25", "--batch_sizes=32,16", "--steps=2",
        "--rounds=1",
    )
    assert lines[0].startswith("# ResNet-18 x0.25, stem stride 1 at 28 px, 64 pairs a round")
    _assert_rates_against_first(lines, ("batch 32", "batch 16"))


@pytest.mark.parametrize("arguments, message", [
    (["--batch_sizes=256,100"], "not a whole number of batches of 100"),
    (["--batch_sizes=256,256"], "names a batch size twice"),
    (["--batch_sizes=1,2"], "at least 2 images"),
    (["--batch_sizes=256,x"], "not a comma-separated list"),
    (["--encoder=18x0.5,18x1"], "names 2 encoders"),
    (["--steps=0"], "at least 1 step"),
    (["--batch_size=128"], "unrecognized arguments: --batch_size=128"),
])
def test_batch_cost_rejects_bad_input_before_any_work(arguments, message):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "batch_cost.py"), *arguments],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "pairs/s" not in result.stdout


@pytest.mark.parametrize("encoders", ["18x0.5,19x1", "18x0.5,18x0.5", "18xa", "18x0.5/3"])
def test_encoder_cost_rejects_a_bad_encoder_list_before_any_work(encoders):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "encoder_cost.py"), f"--encoders={encoders}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "argument --encoders:" in result.stderr
    assert "pairs/s" not in result.stdout
