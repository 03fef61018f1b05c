"""keras_simclr on Keras' JAX backend in a process where TensorFlow cannot be imported.

A JAX-only machine (a GPU box, `benchmarks/gpu_throughput.py`) has no TensorFlow: the
models, the loss, the optimizers, in-model augmentation, `fit()` and `.keras` files
must not need it, and the modules that do must say so.
"""

import os
import subprocess
import sys
import textwrap

_PROGRAM = textwrap.dedent(
    '''
    import importlib.abc
    import sys

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoTensorFlow())

    import keras
    import numpy as np
    import keras_simclr as ks

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    encoder = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    model = ks.models.SimCLR(
        encoder,
        ks.models.projection_head(8, output_dim=4),
        augmenter=ks.augment.SimCLRAugment(8, preset="cifar", seed=0),
        num_classes=2,
    )
    model.compile(optimizer=ks.optimizers.LARS(ks.optimizers.WarmupCosineDecay(0.5, 1, 4)))
    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype="uint8")
    history = model.fit(images, np.arange(16) % 2, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.save(sys.argv[1])
    restored = keras.models.load_model(sys.argv[1])
    np.testing.assert_allclose(restored(images), model(images), rtol=1e-6)
    for name in ("data", "evaluation", "visualization"):
        try:
            getattr(ks, name)
        except ImportError as error:
            assert "needs TensorFlow" in str(error), error
        else:
            raise AssertionError(f"keras_simclr.{name} imported without TensorFlow")
    assert "tensorflow" not in sys.modules
    print("trained without TensorFlow")
    '''
)


def test_models_losses_optimizers_augmentation_fit_and_saving_need_no_tensorflow(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax")
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(tmp_path / "simclr.keras")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained without TensorFlow" in result.stdout
