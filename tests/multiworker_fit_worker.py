"""One worker of the two-process MultiWorkerMirroredStrategy test (not a test file).

Usage: python multiworker_fit_worker.py OUT.npz, with TF_CONFIG set for a worker (or
empty for the single-device reference). Trains SimCLR with `fit()` for two steps on a
fixed global batch of 8 and saves the logged loss and the weights.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_simclr import models  # noqa: E402


def main(out):
    if os.environ.get("TF_CONFIG"):
        json.loads(os.environ["TF_CONFIG"])
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    rng = np.random.default_rng(1)
    base = rng.uniform(size=(16, 8, 8, 3)).astype("float32")
    view_1 = np.clip(base + rng.normal(scale=0.05, size=base.shape), 0, 1).astype("float32")
    view_2 = np.clip(base + rng.normal(scale=0.05, size=base.shape), 0, 1).astype("float32")
    labels = np.arange(16) % 3
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (
        tf.data.Dataset.from_tensor_slices(((view_1, view_2), labels))
        .batch(8, drop_remainder=True)
        .with_options(options)
    )
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
        x = keras.layers.BatchNormalization(synchronized=True)(x)
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
        encoder = keras.Model(inputs, x)
        model = models.SimCLR(
            encoder, models.projection_head(8, output_dim=4, synchronized_bn=True), temperature=0.5, num_classes=3,
            probe_average=0.5,  # its average is assigned across the workers too
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    history = model.fit(dataset, epochs=1, verbose=0)
    arrays = {f"w{i}": w.numpy() for i, w in enumerate(model.weights)}
    arrays["loss"] = np.array(history.history["loss"])
    arrays["probe_accuracy"] = np.array(history.history["probe_accuracy"])
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
