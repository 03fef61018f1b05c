"""The method-neutral base: a second, asymmetric method built only from its hook."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_simclr.models.base import SelfSupervisedModel
from keras_simclr.models.base import replica_share


@keras.saving.register_keras_serializable(package="keras_simclr_tests")
class Flip(keras.layers.Layer):
    """A deterministic augmenter: the horizontal mirror image."""

    def call(self, images, training=None):
        return ops.flip(ops.cast(images, "float32"), axis=2)


@keras.saving.register_keras_serializable(package="keras_simclr_tests")
class CosinePrediction(SelfSupervisedModel):
    """A minimal non-contrastive method: predict view 2's projection from view 1's.

    The loss is `2 - 2 cos(q(g(h_1)), stop_gradient(g(h_2)))` (BYOL's, without the
    target network): the subclass brings its modules and the hook, nothing else.
    """

    objective_metrics = ("loss", "cosine_similarity")
    serialized_arguments = ("encoder", "projector", "predictor")

    def __init__(self, encoder, projector, predictor, **kwargs):
        super().__init__(
            encoder, heads={"projector": projector, "predictor": predictor}, **kwargs
        )

    def compute_objective(self, views, h, training=False):
        prediction = self.predictor(self.projector(h[0], training=training))
        target = ops.stop_gradient(self.projector(h[1], training=training))
        similarity = ops.sum(
            ops.normalize(prediction, axis=-1) * ops.normalize(target, axis=-1), axis=-1
        )
        return {
            "loss": replica_share(2.0 - 2.0 * similarity),
            "cosine_similarity": replica_share(similarity),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            projector=keras.saving.serialize_keras_object(self.projector),
            predictor=keras.saving.serialize_keras_object(self.predictor),
        )
        return config


def _dense(units, input_dim, name):
    inputs = keras.Input((input_dim,))
    return keras.Model(inputs, keras.layers.Dense(units, name=f"{name}_dense")(inputs), name=name)


def _method(num_classes=2, augmenters=None, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(synchronized=True)(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    encoder = keras.Model(inputs, x, name="encoder")
    if augmenters is None:
        augmenters = [keras.layers.Identity(), Flip()]
    return CosinePrediction(
        encoder,
        _dense(4, 8, "projector"),
        _dense(4, 4, "predictor"),
        augmenters=augmenters,
        num_classes=num_classes,
    )


def _images(n=16, seed=1):
    rng = np.random.default_rng(seed)
    # Left-right asymmetric images, so that the two views differ.
    ramp = np.linspace(0, 1, 8, dtype="float32")[None, None, :, None]
    return (rng.uniform(0, 0.5, size=(n, 8, 8, 3)) * ramp + 0.2 * ramp).astype("float32")


def _weights(model):
    return [w.numpy() for w in model.weights]


def test_fit_trains_the_objective_and_the_probe():
    model = _method()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(
        _images(), np.arange(16) % 2, batch_size=8, epochs=8, shuffle=False, verbose=0
    ).history
    assert set(history) == {"loss", "cosine_similarity", "probe_loss", "probe_accuracy"}
    assert history["loss"][-1] < history["loss"][0] - 0.1, history["loss"]
    np.testing.assert_allclose(
        history["loss"], 2 - 2 * np.array(history["cosine_similarity"]), rtol=1e-5
    )


def test_each_view_comes_from_its_augmenter():
    model = _method(num_classes=None)
    model.compile(optimizer="sgd")
    images = _images(n=8)
    logs = model.evaluate(images, batch_size=8, verbose=0, return_dict=True)
    # By hand: view 1 as it is, view 2 mirrored, one encoder pass over both.
    h = model.encoder(np.concatenate([images, images[:, :, ::-1]]), training=False)
    prediction = model.predictor(model.projector(h[:8]))
    target = model.projector(h[8:])
    cosine = tf.reduce_sum(
        tf.math.l2_normalize(prediction, -1) * tf.math.l2_normalize(target, -1), -1
    )
    np.testing.assert_allclose(logs["cosine_similarity"], tf.reduce_mean(cosine), rtol=1e-5)
    # One augmenter makes both views: here identical ones, so h_1 == h_2.
    same = _method(num_classes=None, augmenters=keras.layers.Identity())
    assert len(same.augmenters) == 1
    with pytest.raises(ValueError, match="one per view"):
        _method(augmenters=[Flip(), Flip(), Flip()])


def _one_step(strategy):
    with strategy.scope():
        model = _method(num_classes=3)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    dataset = tf.data.Dataset.from_tensors((_images(n=8), np.arange(8) % 3))
    return model, model.fit(dataset, epochs=1, verbose=0).history


def test_two_replicas_equal_one_device(two_cpu_strategy, one_cpu_strategy):
    one, one_logs = _one_step(one_cpu_strategy)
    two, two_logs = _one_step(two_cpu_strategy)
    assert set(one_logs) == {"loss", "cosine_similarity", "probe_loss", "probe_accuracy"}
    for key in one_logs:
        np.testing.assert_allclose(two_logs[key], one_logs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(_weights(one), _weights(two)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    moved = max(np.abs(a - b).max() for a, b in zip(_weights(one), _weights(_method(3))))
    assert moved > 1e-3


def test_save_load_round_trip(tmp_path):
    model = _method()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        probe_optimizer=keras.optimizers.Adam(1e-2),
    )
    model.fit(_images(), np.arange(16) % 2, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "method.keras")
    restored = keras.models.load_model(tmp_path / "method.keras")
    assert isinstance(restored, CosinePrediction)
    assert [type(a) for a in restored.augmenters] == [keras.layers.Identity, Flip]
    assert isinstance(restored.probe_optimizer, keras.optimizers.Adam)
    for a, b in zip(_weights(model), _weights(restored)):
        np.testing.assert_array_equal(a, b)
