"""Model builders and the SimCLR task.

- `resnet(...)`: the ResNet v1 encoder f (images -> h).
- `projection_head(...)`: the MLP head g (h -> z); `projection_head_layers(head, k)`:
  the head up to layer k (SimCLRv2 fine-tunes from layer 1).
- `linear_probe(...)`: a linear classifier on h.
- `SimCLR(encoder, projection_head, ...)`: the `keras.Model` that pretrains them.
"""

from keras_simclr.models.heads import linear_probe
from keras_simclr.models.heads import projection_head
from keras_simclr.models.heads import projection_head_layers
from keras_simclr.models.resnet import resnet
from keras_simclr.models.simclr import SimCLR
