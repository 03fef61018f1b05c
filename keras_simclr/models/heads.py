"""The projection head g and the linear probe, built as functional Keras models.

SimCLR trains the contrastive loss on z = g(h), a small MLP on top of the
representation h (Chen et al., 2020, Section 2.1 and 4.2), and measures h with a
linear classifier (Section 3 and Appendix B.6). The layers follow the reference
implementation (google-research/simclr `tf2/model.py`, `ProjectionHead` and
`LinearLayer`).

Layer names are `<name>_dense<j>`, `<name>_bn<j>`, `<name>_relu<j>` for the
head's layer j (counted from 1) and `<name>_bn`, `<name>_dense` for the probe, so
every batch-norm variable path contains `bn`.
"""

import numbers

import keras
from keras_simclr import checks
from keras_simclr import distribute

# The reference's BATCH_NORM_DECAY and BATCH_NORM_EPSILON, as in the encoder.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
# The reference initialises every dense layer of the head and the probe this way.
_DENSE_STDDEV = 0.01


def projection_head(
    input_dim,
    num_layers=2,
    hidden_dim=None,
    output_dim=128,
    use_bn=True,
    synchronized_bn=False,
    name="projection_head",
):
    """Builds the projection head g that maps h to z for the contrastive loss.

    A non-linear head (dense, batch norm, ReLU, ..., dense, batch norm) between
    the representation and the loss improves the representation by more than 10
    points over no head and more than 3 points over a linear one (Chen et al.,
    2020, Section 4.2 and Figure 8); SimCLRv1 uses 2 layers, SimCLRv2 3 (Chen
    et al., 2020b, Section 2). As in the reference implementation, every layer
    is a dense layer without bias followed by batch norm (momentum 0.9, epsilon
    1e-5); hidden layers end with ReLU; the last batch norm has no beta (no
    centering) and the last layer no ReLU. Without batch norm the hidden dense
    layers get a bias and the last one none, again as the reference.

    Args:
        input_dim: positive int, the width of h.
        num_layers: number of dense layers: `2` (SimCLRv1), `3` (SimCLRv2),
            `0` for no head (z = h) or `"linear"` for one dense layer (the
            paper's ablation; the same as `1`). Defaults to `2`.
        hidden_dim: positive int, the width of the hidden layers. Defaults to
            `input_dim`, as in the paper.
        output_dim: positive int, the width of z. Defaults to `128`. Ignored
            when `num_layers=0`.
        use_bn: bool, whether each dense layer is followed by batch norm.
            Defaults to `True`.
        synchronized_bn: bool, whether batch norm aggregates its statistics
            across all replicas ("global BN", Section 2.2). Defaults to
            `False`.
        name: name of the model, and prefix of its layers' names. Defaults to
            `"projection_head"`.

    Returns:
        A functional `keras.Model` mapping h of shape `(batch, input_dim)` to z
        of shape `(batch, output_dim)` (`(batch, input_dim)` when
        `num_layers=0`).

    Example:

    >>> from keras_simclr.models import projection_head
    >>> head = projection_head(512, num_layers=3)
    >>> head.output_shape
    (None, 128)
    """
    input_dim = checks.positive_int("input_dim", input_dim)
    if num_layers == "linear":
        num_layers = 1
    elif (
        isinstance(num_layers, bool)
        or not isinstance(num_layers, numbers.Integral)
        or num_layers < 0
    ):
        raise ValueError(
            "`num_layers` must be an int >= 0 (0: no head, 2: SimCLRv1, 3: "
            f"SimCLRv2) or 'linear'. Received: num_layers={num_layers!r}"
        )
    if hidden_dim is None:
        hidden_dim = input_dim
    hidden_dim = checks.positive_int("hidden_dim", hidden_dim)
    output_dim = checks.positive_int("output_dim", output_dim)
    use_bn = checks.boolean("use_bn", use_bn)
    synchronized_bn = checks.boolean("synchronized_bn", synchronized_bn)

    h = keras.Input(shape=(input_dim,), name="h")
    if num_layers == 0:
        return keras.Model(h, keras.layers.Identity(name=f"{name}_identity")(h), name=name)
    x = h
    for layer in range(1, num_layers + 1):
        is_last = layer == num_layers
        x = keras.layers.Dense(
            output_dim if is_last else hidden_dim,
            # A bias before batch norm is cancelled by its mean subtraction;
            # the reference's last layer has no bias even without batch norm.
            use_bias=not (use_bn or is_last),
            kernel_initializer=keras.initializers.RandomNormal(stddev=_DENSE_STDDEV),
            name=f"{name}_dense{layer}",
        )(x)
        if use_bn:
            x = keras.layers.BatchNormalization(
                momentum=_BN_MOMENTUM,
                epsilon=_BN_EPSILON,
                # z is normalised before the loss, so the last layer keeps no
                # offset, as the reference's `center=use_bias` with no bias.
                center=not is_last,
                synchronized=distribute.synchronized_batch_norm(synchronized_bn),
                name=f"{name}_bn{layer}",
            )(x)
        if not is_last:
            x = keras.layers.ReLU(name=f"{name}_relu{layer}")(x)
    return keras.Model(h, x, name=name)


def projection_head_layers(head, num_layers):
    """Returns the first `num_layers` layers of a projection head, sharing weights.

    SimCLRv2 fine-tunes from a middle layer of the projection head rather than
    from h (Chen et al., 2020b, Section 2: "fine-tuning from the first layer of
    the projection head"); the reference selects it with `ft_proj_selector`.
    The returned model maps h to the output of the head's layer `num_layers`
    (after its ReLU for a hidden layer), reusing the head's layers, so training
    it updates the head.

    Args:
        head: a model returned by `projection_head()`.
        num_layers: int between 0 (the model returns h itself) and the head's
            number of dense layers (the whole head).

    Returns:
        A functional `keras.Model` named `<head name>_to_layer<num_layers>`.

    Example:

    >>> from keras_simclr.models import projection_head, projection_head_layers
    >>> head = projection_head(512, num_layers=3)
    >>> projection_head_layers(head, 1).output_shape
    (None, 512)
    """
    dense_layers = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    if (
        isinstance(num_layers, bool)
        or not isinstance(num_layers, numbers.Integral)
        or not 0 <= num_layers <= len(dense_layers)
    ):
        raise ValueError(
            f"`num_layers` must be an int between 0 and {len(dense_layers)}, the "
            f"number of dense layers of head '{head.name}'. "
            f"Received: num_layers={num_layers!r}"
        )
    # Layer k's output is what layer k + 1's dense layer reads.
    outputs = head.output if num_layers == len(dense_layers) else dense_layers[num_layers].input
    return keras.Model(head.input, outputs, name=f"{head.name}_to_layer{num_layers}")


def linear_probe(
    input_dim,
    num_classes,
    use_bn=False,
    synchronized_bn=False,
    name="linear_probe",
):
    """Builds a linear classifier on the representation h, returning logits.

    The linear evaluation protocol trains a linear classifier on frozen h
    (Chen et al., 2020, Section 3 and Appendix B.6); the reference also trains
    one online during pretraining on `stop_gradient(h)` (its `SupervisedHead`,
    a dense layer with bias, initialised with standard deviation 0.01). With
    `use_bn=True` a batch norm without scale and offset standardises h first,
    which makes the probe insensitive to the scale of the features; it has no
    trainable weights.

    Args:
        input_dim: positive int, the width of h.
        num_classes: positive int, the number of classes.
        use_bn: bool, whether to standardise h with batch norm (momentum 0.9,
            epsilon 1e-5, no gamma or beta) before the dense layer. Defaults
            to `False`.
        synchronized_bn: bool, whether that batch norm aggregates its
            statistics across all replicas. Defaults to `False`.
        name: name of the model, and prefix of its layers' names. Defaults to
            `"linear_probe"`.

    Returns:
        A functional `keras.Model` mapping h of shape `(batch, input_dim)` to
        logits of shape `(batch, num_classes)`.

    Example:

    >>> from keras_simclr.models import linear_probe
    >>> probe = linear_probe(512, num_classes=10)
    >>> probe.output_shape
    (None, 10)
    """
    input_dim = checks.positive_int("input_dim", input_dim)
    num_classes = checks.positive_int("num_classes", num_classes)
    use_bn = checks.boolean("use_bn", use_bn)
    synchronized_bn = checks.boolean("synchronized_bn", synchronized_bn)

    h = keras.Input(shape=(input_dim,), name="h")
    x = h
    if use_bn:
        x = keras.layers.BatchNormalization(
            momentum=_BN_MOMENTUM,
            epsilon=_BN_EPSILON,
            center=False,
            scale=False,
            synchronized=distribute.synchronized_batch_norm(synchronized_bn),
            name=f"{name}_bn",
        )(x)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=_DENSE_STDDEV),
        name=f"{name}_dense",
    )(x)
    return keras.Model(h, logits, name=name)



