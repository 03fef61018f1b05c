"""Model builders and the SimCLR task.

- `ResNet(...)` / `resnet(...)`: the ResNet v1 encoder f (images -> h), a functional
  model whose configuration is its constructor arguments; `SumBranches` and
  `SelectBranches`: its selective-kernel layers.
- `projection_head(...)`: the MLP head g (h -> z); `projection_head_layers(head, k)`:
  the head up to layer k (SimCLRv2 fine-tunes from layer 1).
- `linear_probe(...)`: a linear classifier on h.
- `SelfSupervisedModel(encoder, ...)`: the method-neutral base of the methods (views,
  online probe, logs, checks, saving); a method implements `compute_objective`.
- `SimCLR(encoder, projection_head, ...)`: the `keras.Model` that pretrains them.
- `from_reference_checkpoint(path, ...)`: the official SimCLR v1/v2 weights (TF1
  checkpoints, TF2 SavedModels) as a `SimCLR` model; `verify_saved_model(...)`
  compares a conversion with the SavedModel it came from.
"""

try:
    from keras_simclr.models.convert import from_reference_checkpoint
    from keras_simclr.models.convert import verify_saved_model
except ModuleNotFoundError as error:
    # The converter reads TensorFlow checkpoints; on a JAX machine without
    # TensorFlow the rest of the package works, and these two names explain.
    if not (error.name or "").startswith("tensorflow"):
        raise
    _CONVERT_NAMES = ("from_reference_checkpoint", "verify_saved_model")

    def __getattr__(name):
        if name in _CONVERT_NAMES:
            raise ImportError(
                f"keras_simclr.models.{name} reads TensorFlow checkpoints and needs "
                "TensorFlow, which is not installed: pip install 'tensorflow>=2.21,<2.22'."
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

from keras_simclr.models.heads import linear_probe
from keras_simclr.models.heads import projection_head
from keras_simclr.models.heads import projection_head_layers
from keras_simclr.models.resnet import ResNet
from keras_simclr.models.resnet import SelectBranches
from keras_simclr.models.resnet import SumBranches
from keras_simclr.models.resnet import resnet
from keras_simclr.models.base import SelfSupervisedModel
from keras_simclr.models.simclr import SimCLR
