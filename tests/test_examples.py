"""The examples and notebooks run top to bottom in their tiny configurations.

Scripts run as users run them, `python examples/<name>.py ...`, in a subprocess, with
the small arguments their docstrings give. Notebooks execute with nbclient in a
`python3` kernel of this interpreter; a cell inserted right after the cell tagged
`parameters` sets the tiny configuration (papermill's convention, so
`papermill -p ...` works on them too). Any error fails the test; the assertions check
what each example promises (an accuracy above chance, the files it exports, two
replicas, ...).

The runs are independent processes, so the module starts the selected ones two at a
time (for 2 cores) when its first test begins, and each test waits for its own run:
the file takes about half the sum of the runs.
"""

import concurrent.futures
import json
import os
import pathlib
import re
import socket
import subprocess
import sys

import keras
import nbformat
import numpy as np
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

from keras_simclr import models

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = EXAMPLES / "notebooks"
TINY_SPLITS = ["--train_split", "train[:1024]", "--test_split", "test[:512]"]
TINY_DISTRIBUTED = [
    "--epochs", "1", "--steps_per_epoch", "2", "--global_batch_size", "64", *TINY_SPLITS
]
# Fashion-MNIST has 10 classes: 10% is chance. Even a barely trained encoder's
# features give a linear classifier far more than that on 1024 real images.
ABOVE_CHANCE = 30.0
PARALLEL_RUNS = 2

TINY_NOTEBOOK_PARAMETERS = {
    "simclr_quickstart": {
        "EPOCHS": 1,
        "STEPS_PER_EPOCH": 2,
        "BATCH_SIZE": 64,
        "TRAIN_SPLIT": "train[:1024]",
        "TEST_SPLIT": "test[:512]",
    },
    "simclr_tpu_cifar10": {
        "DATASET": "fashion_mnist_rgb",
        "EPOCHS": 1,
        "STEPS_PER_EPOCH": 2,
        "BATCH_SIZE": 32,
        "WIDTH_MULTIPLIER": 0.125,
        "LINEAR_EPOCHS": 1,
        "EVAL_BATCH_SIZE": 128,
        "TRAIN_SPLIT": "train[:512]",
        "TEST_SPLIT": "test[:256]",
    },
}


# Runs ----------------------------------------------------------------------------


def _start_script(name, *args, cwd, env=None):
    command = [sys.executable, str(EXAMPLES / f"{name}.py"), *args]
    env = dict(os.environ if env is None else env, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process, timeout=600):
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _script(name, *args, output_dir=True):
    def run(directory):
        if output_dir:
            args_ = (*args, "--output_dir", str(directory / "run"))
        else:
            args_ = args
        return _finish(_start_script(name, *args_, cwd=directory))

    return run


def _two_workers(directory):
    """The docstring's multi-worker recipe, as two local processes with TF_CONFIG."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = [
        _start_script(
            "distributed", "--strategy", "multi_worker", *TINY_DISTRIBUTED,
            cwd=directory,
            env=dict(
                os.environ,
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            ),
        )
        for i in range(2)
    ]
    return [_finish(process) for process in processes]


def _notebook(name):
    def run(directory):
        notebook = _read(name)
        tiny = "\n".join(f"{k} = {v!r}" for k, v in TINY_NOTEBOOK_PARAMETERS[name].items())
        notebook.cells.insert(
            _parameters_index(notebook) + 1,
            nbformat.v4.new_code_cell(tiny, metadata={"tags": ["injected-parameters"]}),
        )
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=600,
            resources={"metadata": {"path": str(directory)}},
        )
        client.execute()  # raises CellExecutionError at the first failing cell
        return notebook

    return run


# Test id -> the run it checks. The longest runs come first.
RUNS = {
    "test_notebook_runs[simclr_quickstart]": _notebook("simclr_quickstart"),
    "test_distributed_across_two_worker_processes": _two_workers,
    "test_pretrain_fashion_mnist": _script(
        "pretrain_fashion_mnist", "--epochs", "1", "--steps_per_epoch", "2", *TINY_SPLITS
    ),
    "test_notebook_runs[simclr_tpu_cifar10]": _notebook("simclr_tpu_cifar10"),
    "test_custom_dataset": _script(
        "custom_dataset", "--epochs", "1", "--steps_per_epoch", "2", "--batch_size", "32",
        "--demo_images", "256", "--classifier_epochs", "1",
    ),
    "test_distributed_on_two_logical_cpus": _script(
        "distributed", *TINY_DISTRIBUTED, output_dir=False
    ),
    "test_finetune": _script(
        "finetune", "--pretrain_epochs", "1", "--steps_per_epoch", "2",
        "--finetune_epochs", "1", "--batch_size", "64",
        "--train_split", "train[:1000]", "--test_split", "test[:256]",
        output_dir=False,
    ),
}


@pytest.fixture(scope="module")
def python3_kernel(tmp_path_factory):
    """A `python3` kernelspec that runs this interpreter, first on the Jupyter path.

    A machine's own `python3` kernel may start another Python (without keras_simclr);
    this one works on a fresh machine too.
    """
    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(jupyter_dir / "kernels" / "python3")
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter_dir), previous]))
    yield "python3"
    if previous is None:
        del os.environ["JUPYTER_PATH"]
    else:
        os.environ["JUPYTER_PATH"] = previous


@pytest.fixture(scope="module")
def started_runs(request, tmp_path_factory, python3_kernel):
    """Starts the runs of the selected tests, `PARALLEL_RUNS` at a time."""
    selected = {item.name for item in request.session.items if item.path == request.path}
    pool = concurrent.futures.ThreadPoolExecutor(PARALLEL_RUNS)
    futures = {}
    for test_id, run in RUNS.items():
        if test_id in selected:
            directory = tmp_path_factory.mktemp(re.sub(r"\W+", "_", test_id))
            futures[test_id] = (pool.submit(run, directory), directory)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def run(request, started_runs):
    """`(result, directory)` of this test's run, once it has finished."""
    future, directory = started_runs[request.node.name]
    return future.result(), directory


def _succeeded(result):
    assert result.returncode == 0, (
        f"{result.args}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    # Warnings raised from keras_simclr are errors, as in the package's own tests.
    ours = re.findall(r"keras_simclr/\S+\.py:\d+: \w*Warning.*", result.stderr)
    assert not ours, ours
    return result.stdout


def _percent(label, text):
    match = re.search(rf"^{re.escape(label)}: ([0-9.]+)%$", text, re.MULTILINE)
    assert match, f"no line '{label}: ...%' in:\n{text[-3000:]}"
    return float(match.group(1))


# Scripts -------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.slow
def test_pretrain_fashion_mnist(run):
    result, directory = run
    stdout = _succeeded(result)
    assert "2/2" in stdout  # fit() ran the two steps asked for
    assert _percent("linear evaluation accuracy", stdout) > ABOVE_CHANCE
    encoder = keras.models.load_model(directory / "run" / "encoder.keras")
    assert encoder.input_shape == (None, 28, 28, 1)
    assert encoder.output_shape == (None, 128)  # ResNet-18's 512 channels at width 0.25
    model = keras.models.load_model(directory / "run" / "simclr.keras", compile=False)
    assert isinstance(model, models.SimCLR)
    for saved, alone in zip(model.encoder.get_weights(), encoder.get_weights()):
        np.testing.assert_array_equal(saved, alone)


@pytest.mark.e2e
@pytest.mark.slow
def test_custom_dataset(run):
    result, directory = run
    stdout = _succeeded(result)
    demo = directory / "run" / "demo_images"
    assert len(list((demo / "unlabelled").glob("*.png"))) == 256
    # 153 labelled images, 3:1 into train and test, one sub-folder per class.
    assert len(list((demo / "labelled" / "train").glob("*/*.png"))) == 114
    assert len(list((demo / "labelled" / "test").glob("*/*.png"))) == 39
    assert "Pretraining on 256 unlabelled images" in stdout
    assert (directory / "run" / "encoder_savedmodel" / "saved_model.pb").is_file()
    difference = float(re.search(r"max difference: (\S+)", stdout).group(1))
    assert difference < 1e-5  # the SavedModel computes what the Keras encoder does
    assert "Training a classifier on 114 labelled images of 10 classes" in stdout
    assert 0.0 <= _percent("classifier test accuracy", stdout) <= 100.0
    encoder = keras.models.load_model(directory / "run" / "encoder.keras")
    assert encoder.input_shape == (None, 32, 32, 3)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_on_two_logical_cpus(run):
    result, _ = run
    stdout = _succeeded(result)
    assert "MirroredStrategy with 2 replicas; global batch 64 = 32 per replica" in stdout
    assert _percent("linear evaluation accuracy", stdout) > ABOVE_CHANCE


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_across_two_worker_processes(run):
    (chief, worker), _ = run
    outputs = [_succeeded(chief), _succeeded(worker)]
    for stdout in outputs:
        assert "with 2 replicas; global batch 64 = 32 per replica" in stdout
    # The logs are global: both workers print the same loss and metrics.
    step_logs = [re.search(r"^2/2 .*$", stdout, re.MULTILINE).group(0) for stdout in outputs]
    assert step_logs[0].split(" - ")[2:] == step_logs[1].split(" - ")[2:]
    assert _percent("linear evaluation accuracy", outputs[0]) > ABOVE_CHANCE
    assert "linear evaluation accuracy" not in outputs[1]  # the chief alone evaluates


@pytest.mark.e2e
@pytest.mark.slow
def test_finetune(run):
    result, _ = run
    stdout = _succeeded(result)
    rows = {
        line.split("  ")[1].strip(): line.split()
        for line in stdout.splitlines()
        if line.startswith("fashion_mnist")
    }
    assert set(rows) == {"fine-tune (1% labels)", "supervised (1% labels)"}
    for row in rows.values():
        assert row[-4:-1] == ["10", "256", "1"]  # 1% of 1000 labels, test set, 1 epoch
    for label in ("fine-tuned accuracy", "supervised baseline accuracy"):
        assert 0.0 <= _percent(label, stdout) <= 100.0


# Notebooks -----------------------------------------------------------------------


def _read(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _parameters_index(notebook):
    tagged = [
        i for i, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged `parameters`"
    return tagged[0]


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name", sorted(TINY_NOTEBOOK_PARAMETERS))
def test_notebook_is_stored_clean(name):
    notebook = _read(name)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in _code_cells(notebook):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    install = _code_cells(notebook)[0].source
    assert "pip" in install and 'find_spec("keras_simclr") is None' in install
    # Every tiny value overrides a parameter the notebook declares.
    parameters = notebook.cells[_parameters_index(notebook)].source
    for key in TINY_NOTEBOOK_PARAMETERS[name]:
        assert re.search(rf"^{key} = ", parameters, re.MULTILINE), key


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_NOTEBOOK_PARAMETERS))
def test_notebook_runs(name, run):
    notebook, directory = run
    cells = _code_cells(notebook)
    assert cells[0].outputs == []  # keras_simclr is installed here: nothing to do
    printed = "".join(
        output.get("text", "")
        for cell in cells
        for output in cell.outputs
        if output.output_type == "stream"
    )
    if name == "simclr_quickstart":
        assert _percent("linear evaluation accuracy", printed) > ABOVE_CHANCE
        assert 0.0 <= _percent("random encoder accuracy", printed) <= 100.0
        pictures = [
            output
            for cell in cells
            for output in cell.outputs
            if "image/png" in output.get("data", {})
        ]
        assert len(pictures) == 4  # augmentation grid, views, curves, embedding
        for filename in ("views.png", "curves.png", "embedding.png"):
            assert (directory / filename).stat().st_size > 0, filename
        encoder = keras.models.load_model(directory / "fashion_mnist_encoder.keras")
        assert encoder.output_shape == (None, 128)
    else:
        assert "No TPU" in printed and "1 replica(s)" in printed  # the CPU fallback
        assert 0.0 <= _percent("online linear probe accuracy", printed) <= 100.0
        assert 0.0 <= _percent("linear evaluation accuracy", printed) <= 100.0
        encoder = keras.models.load_model(directory / "fashion_mnist_rgb_resnet50_encoder.keras")
        assert encoder.input_shape == (None, 32, 32, 3)
        assert encoder.output_shape == (None, 256)  # ResNet-50's 2048 channels at width 1/8
