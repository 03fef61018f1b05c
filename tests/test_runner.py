"""`keras_simclr.runner`: what the job writes while it trains."""

import csv
import re

import keras
import numpy as np
import pytest

from idx_files import write_real_subset
from keras_simclr import visualization
from keras_simclr import runner


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_real_subset(tmp_path_factory.mktemp("fashion_mnist"), sizes=(512, 256))


def _tiny(data_dir, model_dir, **overrides):
    """The smallest job: 8 steps of 64 make an epoch of the 512 training images."""
    return runner.Config(
        **{
            "mode": "train", "data_dir": str(data_dir), "model_dir": str(model_dir),
            "train_batch_size": 64, "width_multiplier": 0.125, "proj_out_dim": 16,
            "eval_batch_size": 256, "mixed_precision": "off", "verbose": 0,
            **overrides,
        }
    )


def test_history_has_rows_every_few_steps_with_window_means(data_dir, tmp_path):
    config = _tiny(
        data_dir, tmp_path / "run", train_steps=12, log_every_steps=3, checkpoint_epochs=0
    )
    _, history = runner.pretrain(config)
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
    path = visualization.plot_training_curves(
        str(tmp_path / "run" / "history.csv"), str(tmp_path / "curves.png")
    )
    assert path.endswith("curves.png")


def test_probe_is_scored_on_the_clean_evaluation_images_each_epoch(data_dir, tmp_path):
    import keras

    config = _tiny(data_dir, tmp_path / "run", train_epochs=2, log_every_steps=3,
                   checkpoint_epochs=0, eval_split="test")
    model, history = runner.pretrain(config)
    assert len(history["val_probe_accuracy"]) == 2 and len(history["probe_accuracy"]) == 2
    # The last epoch's figure is the saved probe's accuracy on the 256 test images,
    # scored with the moving average of its weights (the job's default).
    test, _ = runner.evaluation_data(config, runner.plan(config), "test")
    images, labels = (np.concatenate(parts) for parts in zip(*test.as_numpy_iterator()))
    saved = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert saved.probe_average == config.probe_average == 0.98
    logits = saved.probe_logits(saved.encoder(images, training=False))
    accuracy = np.mean(np.argmax(np.asarray(logits), axis=-1) == labels)
    np.testing.assert_allclose(history["val_probe_accuracy"][-1], accuracy, atol=1e-6)
    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    # Rows at 3, 6, 8 (epoch end, with validation), 9, 12, 15, 16 (epoch end).
    assert [int(r["step"]) for r in rows] == [3, 6, 8, 9, 12, 15, 16]
    scored = [int(r["step"]) for r in rows if r["val_probe_accuracy"]]
    assert scored == [8, 16]
    np.testing.assert_allclose(
        [float(r["val_probe_accuracy"]) for r in rows if r["val_probe_accuracy"]],
        history["val_probe_accuracy"], rtol=1e-5,
    )
    path = visualization.plot_training_curves(
        str(tmp_path / "run" / "history.csv"), str(tmp_path / "curves.png")
    )
    assert path.endswith("curves.png")


def test_curves_of_a_resumed_run_keep_the_last_row_of_a_step(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "step,epoch,loss\n25,0.25,9.0\n50,0.5,8.0\n25,0.25,7.5\n50,0.5,7.0\n75,0.75,6.0\n"
    )
    logs = visualization._history_logs(str(path))
    assert visualization._last_row_per_step(logs) == {
        "step": [25.0, 50.0, 75.0], "epoch": [0.25, 0.5, 0.75], "loss": [7.5, 7.0, 6.0]
    }
    visualization.plot_training_curves(str(path), str(tmp_path / "curves.png"), ("loss",))


def test_whole_run_and_resume_on_a_non_local_file_system(data_dir):
    # ram:// is a TensorFlow file system like gs://, but offline: every file of the
    # job must go through tf.io.gfile to land there.
    import tensorflow as tf

    model_dir = "ram://simclr-job/run"
    runner.run(_tiny(data_dir, model_dir, train_steps=4, checkpoint_steps=2))
    assert tf.io.gfile.exists(f"{model_dir}/checkpoints/checkpoint")
    results = runner.run(
        _tiny(data_dir, model_dir, mode="train_then_eval", train_steps=6, checkpoint_steps=2)
    )
    with tf.io.gfile.GFile(f"{model_dir}/history.csv") as f:
        steps = [int(line.split(",")[0]) for line in f.read().splitlines()[1:]]
    assert steps[-1] == 6 and 4 in steps  # the second run resumed at step 4
    assert {r.protocol.split(" ")[0] for r in results} == {"linear", "knn"}
    names = set(tf.io.gfile.listdir(model_dir))
    for name in ("config.json", "model.keras", "encoder.keras", "results.json", "history.csv",
                 "curves.png", "embedding.png"):
        assert name in names, (name, names)
    assert not [name for name in names if name.startswith(".tmp-")]


def test_finetune_mode_follows_simclr_v2(data_dir, tmp_path):
    common = dict(
        eval_protocols=("knn",), train_mode="finetune", finetune_label_fraction=0.5,
        finetune_epochs=1,
    )
    assert runner.finetune_epochs(runner.Config(finetune_label_fraction=0.01)) == 60
    assert runner.finetune_epochs(runner.Config(finetune_label_fraction=0.1)) == 30
    results = runner.run(
        _tiny(data_dir, tmp_path / "run", mode="train_then_eval", train_steps=2, **common)
    )
    fine_tuned = results[-1]
    assert fine_tuned.protocol.startswith("fine-tune")
    # From the first projection-head layer (SimCLRv2's ft_proj_selector=1).
    classifier = keras.models.load_model(tmp_path / "run" / "finetuned.keras")
    layers = [layer.name for layer in classifier.layers]
    assert any("projection_head" in name for name in layers), layers
    # --mode=eval of the finished model_dir finds the head in model.keras.
    again = runner.run(_tiny(data_dir, tmp_path / "run", mode="eval", **common))
    assert again[-1].protocol == fine_tuned.protocol
    with pytest.raises(ValueError, match="ft_proj_selector"):
        runner.Config(ft_proj_selector=3)
    assert runner.ft_proj_selector(runner.Config()) == 1
    assert runner.ft_proj_selector(runner.Config(num_proj_layers=0)) == 0


@pytest.mark.parametrize("average, end", [(0.98, 0.1), (0.0, 0.0)])
def test_probe_rate_stays_at_its_peak_when_an_average_scores_the_probe(average, end):
    config = runner.Config(train_steps=100, probe_average=average)
    plan = runner.plan(config)
    optimizer = runner.build_probe_optimizer(config, plan)
    optimizer.iterations.assign(plan.total_steps)
    np.testing.assert_allclose(float(optimizer.learning_rate), end, atol=1e-7)


def test_resume_restores_the_probe_and_its_optimizer(data_dir, tmp_path):
    import tensorflow as tf

    config = _tiny(
        data_dir, tmp_path / "run", train_steps=8, checkpoint_steps=4, checkpoint_epochs=0
    )
    model, _ = runner.pretrain(config)
    assert model.probe_optimizer is not None  # the default: the probe's own Adam
    directory = str(tmp_path / "run" / "checkpoints")
    names = [name for name, _ in tf.train.list_variables(directory)]
    assert any(name.startswith("probe_optimizer/") for name in names), names
    # As if killed after step 4: the index names ckpt-4 as the latest.
    with open(f"{directory}/checkpoint", "w") as f:
        f.write('model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-4"\n')
    saved = tf.train.load_checkpoint(f"{directory}/ckpt-4")
    resumed, _ = runner.pretrain(config)
    # Both optimizers continued from step 4 (a fresh probe optimizer would stand at 4).
    assert int(resumed.optimizer.iterations.numpy()) == 8
    assert int(resumed.probe_optimizer.iterations.numpy()) == 8
    # The probe trained on from its step-4 weights.
    kernel = saved.get_tensor("probe_optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE")
    assert kernel.shape == resumed.probe.trainable_weights[0].shape
    assert 0 < np.abs(kernel - resumed.probe.trainable_weights[0].numpy()).max() < 1.0
    # And so did the moving average that scores it (checkpointed with the model).
    average = "model/probe_average_kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert average in names, names
    assert 0 < np.abs(saved.get_tensor(average) - kernel).max()  # an average, not the weights
    # Restored from step 4, the average is the checkpoint's, not a fresh copy of
    # the restored weights (the checkpoint holds both, and they differ).
    restored = runner.build_model(config, runner.plan(config))
    checkpoint = tf.train.Checkpoint(model=restored)
    checkpoint.restore(f"{directory}/ckpt-4").expect_partial()
    np.testing.assert_array_equal(restored._probe_averages[0].numpy(), saved.get_tensor(average))


def test_model_dir_of_another_architecture_is_refused_by_what_the_encoder_says(
    data_dir, tmp_path
):
    import json

    config = _tiny(data_dir, tmp_path / "run", train_steps=2, checkpoint_epochs=0)
    model, _ = runner.pretrain(config)
    with open(tmp_path / "run" / runner.ARCHITECTURE_FILE) as f:
        record = json.load(f)
    assert record == runner.architecture(model)
    assert (record["method"], record["encoder"]) == ("keras_simclr>SimCLR", "keras_simclr>ResNet")
    assert record["encoder_config"] == {
        "depth": 18, "width_multiplier": 0.125, "input_shape": [28, 28, 1], "cifar_stem": True,
        "stem_stride": 1, "sk_ratio": 0.0,
    }
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    for change, message in [
        (dict(width_multiplier=0.25), "encoder width_multiplier: 0.125 there, 0.25 now"),
        (dict(image_size=24), "encoder input_shape: [28, 28, 1] there, [24, 24, 1] now"),
        (dict(stem_stride=2), "encoder stem_stride: 1 there, 2 now"),
        (dict(proj_out_dim=8), "projection_head_dense2/kernel [64, 16] there, [64, 8] now"),
        # The head's hidden width: h's by default, else --proj_hidden_dim.
        (dict(proj_hidden_dim=32), "projection_head_dense1/kernel [64, 64] there, [64, 32] now"),
    ]:
        with pytest.raises(ValueError, match="different architecture .*" + re.escape(message)):
            runner.pretrain(_tiny(data_dir, tmp_path / "run", train_steps=4, **change))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == files
    # How the encoder runs is no part of what it is: global batch norm may change.
    runner.pretrain(_tiny(data_dir, tmp_path / "run", train_steps=3, global_bn=True))
    # A run recorded before the encoder had `stem_stride` resumes: the argument it
    # lacks reads as its default.
    del record["encoder_config"]["stem_stride"]
    with open(tmp_path / "run" / runner.ARCHITECTURE_FILE, "w") as f:
        json.dump(record, f)
    resumed, _ = runner.pretrain(_tiny(data_dir, tmp_path / "run", train_steps=4))
    assert int(resumed.optimizer.iterations.numpy()) == 4
    with pytest.raises(ValueError, match=re.escape("encoder stem_stride: 1 there, 2 now")):
        runner.pretrain(_tiny(data_dir, tmp_path / "run", train_steps=5, stem_stride=2))
    # A run written before the record existed resumes, and gets one.
    (tmp_path / "run" / runner.ARCHITECTURE_FILE).unlink()
    resumed, _ = runner.pretrain(_tiny(data_dir, tmp_path / "run", train_steps=5))
    assert int(resumed.optimizer.iterations.numpy()) == 5
    assert (tmp_path / "run" / runner.ARCHITECTURE_FILE).exists()


def test_a_new_encoder_class_carries_its_identity(tmp_path):
    # docs/architecture.md, "Adding an encoder": a registered functional subclass whose
    # config is its constructor arguments is all a new encoder needs to be trained,
    # saved, loaded and told apart from another configuration of itself.
    import keras

    from keras_simclr import models

    @keras.saving.register_keras_serializable(package="keras_simclr_tests")
    class TinyConv(keras.Model):
        def __init__(self, filters=8, input_shape=(8, 8, 1), name="tiny_conv", **kwargs):
            images = keras.Input(input_shape)
            x = keras.layers.Conv2D(filters, 3, padding="same", name="conv")(images)
            h = keras.layers.GlobalAveragePooling2D(name="pool")(x)
            super().__init__(images, h, name=name, **kwargs)
            self.filters, self.image_shape = filters, tuple(input_shape)

        def get_config(self):
            return {"filters": self.filters, "input_shape": self.image_shape,
                    "name": self.name, "trainable": self.trainable}

        @classmethod
        def from_config(cls, config):
            return cls(**config)

    def simclr(filters):
        keras.utils.set_random_seed(0)
        head = models.projection_head(filters, num_layers=2, output_dim=4)
        model = models.SimCLR(TinyConv(filters), head, temperature=0.5)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        return model

    model = simclr(8)
    views = np.random.default_rng(0).uniform(size=(2, 16, 8, 8, 1)).astype("float32")
    model.fit((views[0], views[1]), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert type(restored.encoder) is TinyConv and restored.encoder.filters == 8
    for a, b in zip(model.encoder.weights, restored.encoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    record = runner.architecture(restored)
    assert record["encoder"] == "keras_simclr_tests>TinyConv"
    assert record["encoder_config"]["filters"] == 8
    assert record == runner.architecture(model)
    assert runner.architecture(simclr(16))["encoder_config"]["filters"] == 16


def test_stem_stride_on_images_of_the_imagenet_stem_is_refused_before_any_work(monkeypatch):
    from keras_simclr import data
    from keras_simclr import planning

    monkeypatch.setattr(
        planning.data, "info", lambda *args, **kwargs: data.DatasetInfo(1000, 10, (64, 64, 3), True)
    )
    config = runner.Config(dataset="folder_of_64px", stem_stride=2)
    with pytest.raises(ValueError, match=r"`stem_stride`=2 applies to the CIFAR stem .* --image_size=32"):
        planning.plan(config)
    assert planning.plan(runner.Config(dataset="folder_of_64px", stem_stride=2, image_size=32))
    assert planning.plan(runner.Config(dataset="folder_of_64px")).image_size == 64
