"""`from_reference_checkpoint`: the Keras models a layout describes, with its weights."""

import os
import re

import keras
import tensorflow as tf

from keras_simclr import checks
from keras_simclr.models import heads
from keras_simclr.models.convert.layout import RELEASES
from keras_simclr.models.convert.layout import first_line
from keras_simclr.models.convert.reading import read_layout
from keras_simclr.models.resnet import resnet
from keras_simclr.models.simclr import SimCLR


def from_reference_checkpoint(
    path,
    input_shape=(224, 224, 3),
    ema=False,
    ft_proj_selector=None,
    classifier=False,
):
    """Builds a `SimCLR` model holding the weights of an official SimCLR release.

    Reads the ImageNet models that Chen et al. released with SimCLR (2020) and
    SimCLRv2 (2020b, Table 1): ResNet-50, -101 and -152, 1x to 4x wide, with or
    without selective kernels, as TF1 checkpoints or TF2 SavedModels. The depth,
    width, selective kernels, projection head and classifier are read from the
    tensors' shapes. The reference's layers are the ones `resnet()` and
    `projection_head()` build (ImageNet stem, fixed padding, ResNet v1.5
    bottlenecks, ResNet-D with selective kernels, batch norm with epsilon 1e-5), so
    the converted model computes what the reference computes, to float32 rounding.

    The released checkpoints also hold a linear classifier (1000 ImageNet classes):
    on h for the pretrained and supervised models, on the output of the projection
    head's first layer for SimCLRv2's fine-tuned ones (the reference's
    `ft_proj_selector=1`; Chen et al., 2020b, Section 2). The two cannot be told apart from
    the tensors (both read 2048 x width features), so `ft_proj_selector` says
    which. A classifier on h becomes the `SimCLR` model's linear probe;
    `classifier=True` also returns the whole network as a classifier.

    SimCLRv1's releases have no projection head; their model gets an empty head
    (z = h), and fine-tuning starts from h.

    Args:
        path: a TF1 checkpoint prefix (`.../model.ckpt-250228`), a directory holding
            one, a SavedModel directory (`.../saved_model`) or its
            `variables/variables` prefix. Any path TensorFlow reads works,
            `gs://` included.
        input_shape: `(height, width, 3)` of the encoder's input; the sides may be
            `None`. The reference takes RGB images in [0, 1]. Defaults to
            `(224, 224, 3)`.
        ema: bool, read the exponential-moving-average copy of a TF1 checkpoint's
            variables (`ema_model/...`) instead of the trained ones. Defaults to
            `False`.
        ft_proj_selector: the projection-head layer the checkpoint's classifier
            reads: 0 (h) or 1 (SimCLRv2's fine-tuned releases). `None` chooses 1
            when the path names a SimCLRv2 fine-tuned release (a `finetuned_...`
            folder) and the checkpoint has a head, else 0. Defaults to `None`.
        classifier: bool, also return the classifier (images -> logits).
            Defaults to `False`.

    Returns:
        A `SimCLR` model (`encoder`, `projection_head`, and the classifier as its
        `probe` when it reads h), or `(model, classifier)` with
        `classifier=True`: a functional `keras.Model` mapping images to logits
        through the model's encoder, the head's first `ft_proj_selector` layers and
        the checkpoint's linear layer (sharing their weights), or `None` when the
        checkpoint has no classifier.

    Example:

    ```python
    # A copy of gs://simclr-checkpoints-tf2/simclrv2/finetuned_10pct/r50_1x_sk0
    model, classifier = keras_simclr.models.from_reference_checkpoint(
        "simclrv2/finetuned_10pct/r50_1x_sk0/saved_model", classifier=True
    )
    h = model.encoder(images)  # images: (batch, 224, 224, 3) in [0, 1]
    logits = classifier(images)  # 1000 ImageNet classes, from head layer 1
    ```
    """
    checks.boolean("ema", ema)
    checks.boolean("classifier", classifier)
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            "`input_shape` must be (height, width, 3): the released models take RGB "
            f"images. Received: input_shape={input_shape!r}"
        )
    reference = read_layout(path, ema)
    selector = _selector(path, ft_proj_selector, reference)
    model, network, layers = _build(reference, input_shape, selector)
    _assign(reference, layers)
    return (model, network) if classifier else model


def _selector(path, ft_proj_selector, reference):
    num_layers = len(reference.head_dims)
    if ft_proj_selector is None:
        # SimCLRv2's fine-tuned releases live in `finetuned_1pct/`, `finetuned_10pct/`,
        # `finetuned_100pct/`; v1's `finetune_*` have no head and classify h.
        fine_tuned = re.search(r"(^|[/_])finetuned_", os.fspath(path)) is not None
        return 1 if fine_tuned and num_layers and reference.num_classes else 0
    if (
        isinstance(ft_proj_selector, bool)
        or not isinstance(ft_proj_selector, int)
        or not 0 <= ft_proj_selector <= num_layers
    ):
        raise ValueError(
            "`ft_proj_selector` is the projection-head layer the checkpoint's classifier "
            f"reads: 0 (h) to {num_layers} (the checkpoint's head has {num_layers} "
            f"layers). Received: ft_proj_selector={ft_proj_selector!r}"
        )
    return ft_proj_selector


def _build(reference, input_shape, selector):
    """The Keras models, and a function from (part, layer name) to the layer."""
    encoder = resnet(
        depth=reference.depth,
        width_multiplier=reference.width_multiplier,
        input_shape=input_shape,
        cifar_stem=False,
        sk_ratio=reference.sk_ratio,
    )
    feature_dim = encoder.output_shape[-1]
    head_dims = reference.head_dims
    projection_head = heads.projection_head(
        feature_dim,
        num_layers=len(head_dims),
        hidden_dim=head_dims[0] if len(head_dims) > 1 else None,
        output_dim=head_dims[-1] if head_dims else 128,
        name="projection_head",
    )
    probe_on_h = reference.num_classes is not None and selector == 0
    model = SimCLR(
        encoder,
        projection_head,
        num_classes=reference.num_classes if probe_on_h else None,
        probe_batch_norm=False,  # the reference's linear layer reads h as it is
    )
    network = None
    linear = None
    if reference.num_classes is not None:
        images = keras.Input(shape=encoder.inputs[0].shape[1:], name="images")
        features = encoder(images)
        if probe_on_h:
            logits = model.probe(features)
            linear = model.probe.get_layer("linear_probe_dense")
        else:
            features = heads.projection_head_layers(projection_head, selector)(features)
            linear = keras.layers.Dense(reference.num_classes, name="supervised_head")
            logits = linear(features)
        network = keras.Model(images, logits, name="classifier")
    parts = {"encoder": encoder.get_layer, "projection_head": projection_head.get_layer}
    parts["supervised_head"] = lambda name: linear
    return model, network, lambda part, name: parts[part](name)


def _assign(reference, layer_of):
    """Checks every shape, then copies the tensors into the layers' variables."""
    targets = []
    mismatches = []
    for (part, name, weight), key in reference.keys.items():
        variable = getattr(layer_of(part, name), weight)
        shape = reference.shapes[key]
        if list(variable.shape) != shape:
            mismatches.append(f"{key} is {shape}, layer {name!r} has {list(variable.shape)}")
        targets.append((variable, key))
    if mismatches:
        raise ValueError(
            f"{reference.prefix!r} does not fit the network its shapes describe: "
            f"{'; '.join(mismatches[:3])}. {RELEASES}"
        )
    for variable, key in targets:
        try:
            value = reference.reader.get_tensor(key)
        except tf.errors.OpError as error:
            raise ValueError(
                f"Cannot read {key} from {reference.prefix!r} ({first_line(error)}): the "
                "checkpoint is truncated or corrupt. Download it again."
            ) from None
        variable.assign(value.astype(variable.dtype))
