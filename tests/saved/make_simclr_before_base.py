"""Writes `simclr_before_base.keras` and `.npz`: a tiny SimCLR saved by the code of
commit 4c95b1e, before the method-neutral base class, and what it did next.

Kept for provenance (not a test file); `tests/test_simclr.py` loads the files with the
current code. Run from the repository root at that commit:
`python tests/saved/make_simclr_before_base.py tests/saved/simclr_before_base`.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_simclr import models  # noqa: E402


def main(out):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(synchronized=True, name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    encoder = keras.Model(inputs, x, name="encoder")
    model = models.SimCLR(
        encoder,
        models.projection_head(4, num_layers=2, output_dim=4),
        temperature=0.5,
        num_classes=2,
        objective="paper",
        l2_weight_decay=1e-4,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        probe_optimizer=keras.optimizers.Adam(1e-2),
    )
    rng = np.random.default_rng(0)
    view_1 = rng.uniform(size=(8, 8, 8, 3)).astype("float32")
    view_2 = np.clip(view_1 + 0.05, 0, 1)
    labels = np.arange(8) % 2
    data = ((view_1, view_2), labels)
    model.fit(*data, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(out + ".keras")
    h = model(view_1).numpy()
    logs = model.fit(*data, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.savez(
        out + ".npz",
        view_1=view_1,
        view_2=view_2,
        labels=labels,
        h=h,
        config_keys=np.array(sorted(model.get_config())),
        next_loss=np.array(logs["loss"]),
        next_probe_loss=np.array(logs["probe_loss"]),
        **{"next/" + w.path: w.numpy() for w in model.weights},
    )


if __name__ == "__main__":
    main(sys.argv[1])
