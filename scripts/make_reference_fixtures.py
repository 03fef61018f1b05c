"""Records what the reference implementation computes, for tests/test_convert.py.

Builds SimCLR models with the reference's own code (google-research/simclr: the
TF1 `resnet.py` + `model_util.py`, the TF2 `tf2/model.py`), sets every variable by
the seeded rule of `tests/reference_checkpoints.py`, and writes to
`tests/data/reference/`:

- `<fixture>.json`: the reference's settings and every variable's checkpoint key
  and shape (TF1: the graph's variable names; TF2: the keys `tf.train.Checkpoint`
  writes for the model);
- `<fixture>.npz`: the reference's h, z and supervised logits on the fixed 65x65
  images, in inference mode.

Before recording, each fixture's checkpoint is rebuilt by the test helper and
restored into the reference model, so the helper writes exactly the keys the
reference reads. The reference's code is not part of this repository; get it and
an environment with Keras 2 once:

    git -C <simclr mirror> archive HEAD | tar -x -C /work/ref-simclr   # or git clone
    python3 -m venv --system-site-packages /work/ref-venv
    /work/ref-venv/bin/pip install "tf-keras~=2.21.0"   # TensorFlow's version
    /work/ref-venv/bin/python scripts/make_reference_fixtures.py /work/ref-simclr

Each fixture runs in its own process (the TF1 code needs graph mode and both
versions define modules named `resnet`). `--saved_model=DIR` also saves the first
TF2 fixture as a SavedModel called like the released ones (`model(images,
trainable=False)` -> dict), to try `keras_simclr.models.verify_saved_model` on; it
is about 100 MB, so it is not committed.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "tests"))
import reference_checkpoints  # noqa: E402  (tests/reference_checkpoints.py)

# name -> the reference's settings. Supervised heads of 10 classes keep the files
# small; `ft_proj_selector` is the head layer the supervised head reads (SimCLRv2's
# fine-tuned releases read layer 1, the others h).
FIXTURES = {
    # SimCLRv2 fine-tuned: ResNet-50, 3-layer head, classifier on head layer 1.
    "tf2_r50_1x_sk0": dict(
        format="tf2", resnet_depth=50, width_multiplier=1, sk_ratio=0.0,
        proj_head_mode="nonlinear", num_proj_layers=3, num_classes=10, ft_proj_selector=1,
    ),
    # SimCLRv2 pretrained with its linear-evaluation head: selective kernels.
    "tf2_r50_1x_sk1": dict(
        format="tf2", resnet_depth=50, width_multiplier=1, sk_ratio=0.0625,
        proj_head_mode="nonlinear", num_proj_layers=3, num_classes=10, ft_proj_selector=0,
    ),
    # Block indices up to 22 (sorted as strings, 10 would come before 2).
    "tf2_r101_1x_sk0": dict(
        format="tf2", resnet_depth=101, width_multiplier=1, sk_ratio=0.0,
        proj_head_mode="nonlinear", num_proj_layers=3, num_classes=10, ft_proj_selector=0,
    ),
    # SimCLRv1-like: no projection head, the linear classifier on h.
    "tf1_r50_1x_sk0": dict(
        format="tf1", resnet_depth=50, width_multiplier=1, sk_ratio=0.0,
        proj_head_mode="none", num_proj_layers=0, num_classes=10, ft_proj_selector=0,
    ),
    # SimCLRv2 fine-tuned, TF1 names: selective kernels, classifier on head layer 1.
    "tf1_r50_1x_sk1": dict(
        format="tf1", resnet_depth=50, width_multiplier=1, sk_ratio=0.0625,
        proj_head_mode="nonlinear", num_proj_layers=3, num_classes=10, ft_proj_selector=1,
    ),
}
PROJECTION_DIM = 128


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=pathlib.Path, help="a copy of google-research/simclr")
    parser.add_argument("--output", type=pathlib.Path, default=reference_checkpoints.FIXTURES)
    parser.add_argument("--fixtures", default=",".join(FIXTURES), help="comma-separated names")
    parser.add_argument("--saved_model", type=pathlib.Path, help="also save a TF2 fixture here")
    parser.add_argument(
        "--reference_commit", help="the reference's commit, when its copy is not a git checkout"
    )
    parser.add_argument("--run_one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.reference / "tf2" / "model.py").exists():
        parser.error(f"{args.reference} is not a copy of google-research/simclr (no tf2/model.py)")
    if args.run_one:
        commit = args.reference_commit or _commit(args.reference)
        _record(args.run_one, args.reference.resolve(), args.output, args.saved_model, commit)
        return
    environment = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    args.output.mkdir(parents=True, exist_ok=True)
    saved_model = args.saved_model
    for name in args.fixtures.split(","):
        if name not in FIXTURES:
            parser.error(f"Unknown fixture {name!r}; known: {', '.join(FIXTURES)}")
        commit = args.reference_commit or _commit(args.reference)
        command = [
            sys.executable, __file__, str(args.reference), f"--output={args.output}",
            f"--run_one={name}", f"--reference_commit={commit}",
        ]
        if saved_model and FIXTURES[name]["format"] == "tf2":
            command.append(f"--saved_model={saved_model}")
            saved_model = None
        subprocess.run(command, env=environment, check=True)


def _record(name, reference, output, saved_model, commit):
    import numpy as np
    import tensorflow as tf

    if not hasattr(tf.keras.layers, "experimental"):
        sys.exit(
            "The reference's code needs Keras 2: run in a virtual environment with "
            "`pip install tf-keras` matching TensorFlow (see this script's docstring)."
        )
    settings = FIXTURES[name]
    _define_reference_flags(settings)
    images = reference_checkpoints.reference_images()
    if settings["format"] == "tf1":
        variables, outputs = _run_tf1(reference, settings, images)
    else:
        variables, outputs = _run_tf2(reference, settings, images, saved_model)
    spec = dict(
        name=name,
        settings=settings,
        projection_dim=PROJECTION_DIM if settings["num_proj_layers"] else None,
        reference_commit=commit,
        tensorflow=tf.__version__,
        images=list(images.shape),
        variables=variables,
    )
    (output / f"{name}.json").write_text(json.dumps(spec, indent=1) + "\n")
    np.savez_compressed(output / f"{name}.npz", **outputs)
    scales = ", ".join(f"max |{key}| {np.abs(value).max():.3g}" for key, value in outputs.items())
    print(f"{name}: {len(variables)} variables; {scales}", flush=True)


def _define_reference_flags(settings):
    """The absl flags the reference's model code reads (its run.py defines them)."""
    from absl import flags

    values = dict(
        train_mode="finetune" if settings["format"] == "tf1" else "pretrain",
        resnet_depth=settings["resnet_depth"],
        width_multiplier=settings["width_multiplier"],
        sk_ratio=settings["sk_ratio"],
        se_ratio=0.0,
        proj_head_mode=settings["proj_head_mode"],
        num_proj_layers=settings["num_proj_layers"],
        proj_out_dim=PROJECTION_DIM,
        ft_proj_selector=settings["ft_proj_selector"],
        fine_tune_after_block=-1,
        lineareval_while_pretraining=True,
        global_bn=True,
        batch_norm_decay=0.9,
        image_size=224,  # the ImageNet stem
        use_blur=False,
        use_tpu=False,
    )
    for flag, value in values.items():
        define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}
        define.get(type(value), flags.DEFINE_string)(flag, value, "")
    flags.FLAGS(["make_reference_fixtures"])


def _run_tf1(reference, settings, images):
    """The TF1 graph as the reference's model function builds it for fine-tuning."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    sys.path.insert(0, str(reference))
    import model_util
    import resnet

    graph = tf1.Graph()
    with graph.as_default():
        inputs = tf1.placeholder(tf.float32, images.shape)
        network = resnet.resnet_v1(
            settings["resnet_depth"], settings["width_multiplier"], cifar_stem=False
        )
        with tf1.variable_scope("base_model"):
            h = network(inputs, is_training=False)
        supervised_inputs = model_util.projection_head(h, is_training=False)
        logits = model_util.supervised_head(
            supervised_inputs, settings["num_classes"], is_training=False
        )
        fetches = dict(h=h, logits=logits)
        if settings["num_proj_layers"]:
            last = settings["num_proj_layers"] - 1
            fetches["z"] = graph.get_tensor_by_name(f"head_contrastive/nl_{last}/nl_{last}_out:0")
        graph_variables = {v.op.name: v for v in tf1.global_variables()}
        variables = {name: v.shape.as_list() for name, v in graph_variables.items()}
        saver = tf1.train.Saver()
    values = {key: value_of(key, shape) for key, shape in variables.items()}
    with tempfile.TemporaryDirectory() as directory:
        # Written eagerly by the test helper, restored by the reference's graph.
        prefix = os.path.join(directory, "model.ckpt")
        reference_checkpoints.write_tf1_checkpoint(prefix, values)
        with tf1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            restored = session.run(graph_variables)
            for name, value in restored.items():
                assert (value == values[name]).all(), name
            outputs = session.run(fetches, {inputs: images})
    return variables, outputs


def _run_tf2(reference, settings, images, saved_model):
    """The reference's Keras model: encoder, projection head and supervised head."""
    import numpy as np
    import tensorflow as tf

    sys.path.insert(0, str(reference / "tf2"))
    import model as model_lib

    model = model_lib.Model(settings["num_classes"])
    forward(model, images)  # creates the variables
    with tempfile.TemporaryDirectory() as directory:
        written = tf.train.Checkpoint(model=model).write(os.path.join(directory, "keys"))
        reader = tf.train.load_checkpoint(written)
        variables = {
            key: shape
            for key, shape in reader.get_variable_to_shape_map().items()
            if key.endswith(reference_checkpoints.TF2_SUFFIX)
        }
        values = {key: value_of(key, shape) for key, shape in variables.items()}
        rebuilt = reference_checkpoints.write_tf2_checkpoint(
            os.path.join(directory, "fixture"), values
        )
        tf.train.Checkpoint(model=model).read(rebuilt).assert_existing_objects_matched()
        # Every variable of the model now holds its rule's value, under its key.
        reread = tf.train.Checkpoint(model=model).write(os.path.join(directory, "check"))
        reread = tf.train.load_checkpoint(reread)
        for key, value in values.items():
            assert (reread.get_tensor(key) == value).all(), key
        assert len(model.variables) == len(values), (len(model.variables), len(values))
    outputs = {key: value.numpy() for key, value in forward(model, tf.constant(images)).items()}
    if saved_model:
        _save_like_the_release(model, saved_model)
    return variables, {key: np.asarray(value) for key, value in outputs.items()}


def value_of(key, shape):
    """The test helper's value for a TF1 name or a TF2 key."""
    name = key.removesuffix(reference_checkpoints.TF2_SUFFIX)
    return reference_checkpoints.reference_value(name, shape)


def forward(model, images, training=False):
    """h, z and logits of the reference's TF2 model, the pieces its `Model.__call__`
    chains (without the pretraining-only blur)."""
    h = model.resnet_model(images, training=training)
    z, supervised_inputs = model._projection_head(h, training)
    logits = model.supervised_head(supervised_inputs, training)
    return dict(h=h, z=z, logits=logits)


def _save_like_the_release(model, directory):
    """A SavedModel with the released ones' call: `(images, trainable) -> dict`."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function
        def __call__(self, images, trainable):
            outputs = forward(self.model, images, training=trainable)
            return dict(
                final_avg_pool=outputs["h"],
                proj_head_output=outputs["z"],
                logits_sup=outputs["logits"],
            )

    module = Module(model)
    module.__call__.get_concrete_function(tf.TensorSpec([None, None, None, 3], tf.float32), False)
    tf.saved_model.save(module, str(directory))
    print(f"SavedModel written to {directory}", flush=True)


def _commit(reference):
    result = subprocess.run(
        ["git", "-C", str(reference), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"

if __name__ == "__main__":
    main()
