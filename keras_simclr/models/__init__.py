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

from keras_simclr.models.convert import from_reference_checkpoint
from keras_simclr.models.convert import verify_saved_model

from keras_simclr.models.heads import linear_probe
from keras_simclr.models.heads import projection_head
from keras_simclr.models.heads import projection_head_layers
from keras_simclr.models.resnet import ResNet
from keras_simclr.models.resnet import SelectBranches
from keras_simclr.models.resnet import SumBranches
from keras_simclr.models.resnet import resnet
from keras_simclr.models.base import SelfSupervisedModel
from keras_simclr.models.simclr import SimCLR
