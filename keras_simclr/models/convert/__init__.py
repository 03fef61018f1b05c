"""The official SimCLR v1 and v2 weights as keras_simclr models.

The reference implementation (google-research/simclr) released its ImageNet models
as TF1 checkpoints (gs://simclr-checkpoints) and as TF2 SavedModels converted from
them (gs://simclr-checkpoints-tf2). Neither can be fine-tuned as a Keras 3 model: a
checkpoint holds only tensors, a SavedModel a frozen TF2 graph. This package reads
the tensors of either (with `tf.train.load_checkpoint`, without loading any graph)
into the encoder, projection head and linear classifier that `keras_simclr.models`
builds, whose layers follow the reference's one for one.

- `reading`: finds the checkpoint a path names, checks its files, reads its layout.
- `layout`: what both formats share: the architecture inferred from the tensors'
  shapes and the checkpoint key of every weight of our layers (`Layout`).
- `tf1`: TF1 checkpoints, whose variables are named by creation order.
- `tf2`: TF2 checkpoints, whose variables are found through the object graph.
- `build`: `from_reference_checkpoint`, the Keras models with the weights copied in.
- `verify`: `verify_saved_model`, a conversion against the SavedModel it came from.

The public names are the three below; the modules' other names serve this package.
"""

from keras_simclr.models.convert.build import from_reference_checkpoint
from keras_simclr.models.convert.reading import saved_model_directory
from keras_simclr.models.convert.verify import verify_saved_model
