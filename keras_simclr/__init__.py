"""keras_simclr: SimCLR contrastive self-supervised learning for Keras 3.

SimCLR (Chen, Kornblith, Norouzi, Hinton, ICML 2020) learns image representations
without labels: two random augmentations of each image pass through an encoder and a
small projection head, and the NT-Xent loss pulls the two views of an image together
while pushing the other images of the (global, cross-replica) batch away.

One import path per concept:

- `keras_simclr.augment`: the augmentation pipeline as Keras preprocessing layers.
- `keras_simclr.losses`: the NT-Xent loss and its contrastive metrics.
- `keras_simclr.optimizers`: LARS and the warm-up + cosine learning-rate schedule.
- `keras_simclr.models`: ResNet encoders, projection head, linear probe, `SimCLR`.
- `keras_simclr.data`: input pipelines (tfds, local Fashion-MNIST, image folders).
- `keras_simclr.evaluation`: linear evaluation, kNN, semi-supervised fine-tuning.
- `keras_simclr.visualization`: pictures of the views, training curves, embeddings.
- `keras_simclr.distribute`: the cross-replica pieces (gather, loss scaling, strategies;
  `data_parallel()` on Keras' JAX backend).
"""

__version__ = "0.1.0"

# Importing the package loads TensorFlow and Keras, so the command line's quiet
# start and its choice of backend (--backend) happen here, first; they change
# nothing for a program that imports keras_simclr.
from keras_simclr import cli as _cli

if _cli.started_as_command_line():
    _cli.quiet_start()
    # Before any module below imports Keras, which fixes its backend then.
    _cli.select_backend()

from keras_simclr import augment  # noqa: E402
from keras_simclr import distribute  # noqa: E402
from keras_simclr import losses  # noqa: E402
from keras_simclr import models  # noqa: E402
from keras_simclr import optimizers  # noqa: E402

# The input pipelines (tf.data), the evaluation and the pictures are TensorFlow
# code; Keras' JAX backend trains without TensorFlow installed (e.g. on a GPU
# machine), and these three modules then say what they need.
_NEED_TENSORFLOW = ("data", "evaluation", "visualization")
try:
    import tensorflow as _tensorflow  # noqa: E402, F401
except ModuleNotFoundError as _error:
    if not (_error.name or "").startswith("tensorflow"):
        raise

    def __getattr__(name):
        if name in _NEED_TENSORFLOW:
            raise ImportError(
                f"keras_simclr.{name} needs TensorFlow, which is not installed: "
                "pip install 'tensorflow>=2.21,<2.22'. Without it, train on Keras' JAX "
                "backend from arrays or another input pipeline."
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

else:
    from keras_simclr import data  # noqa: E402
    from keras_simclr import evaluation  # noqa: E402
    from keras_simclr import visualization  # noqa: E402
