"""keras_simclr.checkpoints: the job's backend-neutral resumable checkpoints."""

import json
import os

import keras
import numpy as np
import pytest

from keras_simclr import checkpoints


def _model_and_optimizer(seed=0, units=3):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(units, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Dropout(0.5, seed=seed)(x))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _values(*objects):
    return [np.asarray(v.numpy()) for obj in objects for v in obj.variables]


def _train_a_step(model, optimizer):
    x = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
    model(x, training=True)  # moves the batch-norm statistics and the seed
    gradients = [np.ones(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))


def test_save_and_restore_every_variable(tmp_path):
    model, optimizer = _model_and_optimizer()
    _train_a_step(model, optimizer)
    manager = checkpoints.ArrayCheckpointManager(
        dict(model=model, optimizer=optimizer), str(tmp_path), max_to_keep=2
    )
    assert manager.latest_checkpoint is None
    path = manager.save(checkpoint_number=1)
    assert path == manager.latest_checkpoint == os.path.join(str(tmp_path), "ckpt-1")
    saved = _values(model, optimizer)

    other, other_optimizer = _model_and_optimizer(seed=5)
    assert any(not np.array_equal(a, b) for a, b in zip(_values(other, other_optimizer), saved))
    restored = checkpoints.ArrayCheckpointManager(
        dict(model=other, optimizer=other_optimizer), str(tmp_path), max_to_keep=2
    )
    restored.restore(restored.latest_checkpoint)
    for a, b in zip(_values(other, other_optimizer), saved):
        np.testing.assert_array_equal(a, b)
    assert int(other_optimizer.iterations.numpy()) == 1


def test_keeps_the_latest_and_ignores_an_unpublished_archive(tmp_path):
    model, optimizer = _model_and_optimizer()
    manager = checkpoints.ArrayCheckpointManager(
        dict(model=model, optimizer=optimizer), str(tmp_path), max_to_keep=2
    )
    for step in (1, 2, 3):
        manager.save(checkpoint_number=step)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "ckpt-2.npz", "ckpt-3.npz"]
    # A run killed after writing an archive but before the index names it resumes
    # from the index's latest, which is whole.
    (tmp_path / "ckpt-4.npz").write_bytes(b"half")
    assert manager.latest_checkpoint.endswith("ckpt-3")
    manager.restore(manager.latest_checkpoint)
    with open(tmp_path / "checkpoint.json") as f:
        assert json.load(f) == {"checkpoints": ["ckpt-2", "ckpt-3"]}


def test_refuses_a_checkpoint_of_another_model(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpoints.ArrayCheckpointManager(
        dict(model=model, optimizer=optimizer), str(tmp_path), max_to_keep=1
    ).save(checkpoint_number=1)
    wider, wider_optimizer = _model_and_optimizer(units=5)
    before = _values(wider, wider_optimizer)
    manager = checkpoints.ArrayCheckpointManager(
        dict(model=wider, optimizer=wider_optimizer), str(tmp_path), max_to_keep=1
    )
    with pytest.raises(ValueError, match="shapes differ"):
        manager.restore(manager.latest_checkpoint)
    for a, b in zip(_values(wider, wider_optimizer), before):
        np.testing.assert_array_equal(a, b)  # nothing assigned
    manager = checkpoints.ArrayCheckpointManager(dict(model=model), str(tmp_path), max_to_keep=1)
    with pytest.raises(ValueError, match="holds .* it does not have"):
        manager.restore(manager.latest_checkpoint)
