"""NT-Xent, the contrastive loss of SimCLR, and its contrastive metrics.

SimCLR (Chen et al., ICML 2020, Section 2.1, Eq. 1 and Algorithm 1) scores every
view of a batch of N examples against the other 2N - 1 views: its pair is the
positive, the 2N - 2 others are negatives. Under `tf.distribute` the negatives are
the projections of all replicas (Section 2.2), gathered by
`keras_simclr.distribute.cross_replica_concat`, and each replica returns its share
of the global mean, so that R replicas train exactly the one-device objective. On
Keras' JAX backend the loss sees the global batch, sharded by `keras.distribution`,
and returns the global mean.

- `nt_xent`: the loss with its logits, labels and the two metrics SimCLR logs.
- `NTXent`: the same loss as a `keras.losses.Loss` for `model.compile(loss=...)`.
- `contrastive_accuracy`, `contrastive_entropy`: per-anchor metrics from the logits.
"""

import collections
import math
import numbers

import keras
from keras import ops

from keras_simclr import distribute

# The reference implementation (simclr/tf2/objective.py) masks self-similarities
# with this finite value rather than -inf, so that no inf or nan enters softmax or
# its gradient. It is representable in float32, where the logits are computed; in
# float16 it would overflow to -inf (the keras-cv contrastive-loss bug).
LARGE_NUM = 1e9

NTXentResult = collections.namedtuple(
    "NTXentResult", ["loss", "accuracy", "entropy", "logits", "labels"]
)
NTXentResult.__doc__ = """What `nt_xent` returns.

The floating-point fields are float32 (float64 when the projections are float64).

Attributes:
    loss: scalar, this replica's share of the global mean NT-Xent loss.
    accuracy: scalar, this replica's share of the global contrastive accuracy
        (the fraction of anchors whose positive ranks first).
    entropy: scalar, this replica's share of the global mean entropy of the
        anchors' softmax over their 2N - 1 candidates.
    logits: `(2n, 2N)` similarities / temperature of this replica's 2n
        anchors against the 2N candidates of all replicas, self-similarities set
        to `-LARGE_NUM`.
    labels: `(2n,)` int32 column of each anchor's positive in `logits`.
"""

_Terms = collections.namedtuple(
    "_Terms", ["per_anchor_loss", "logits", "labels", "num_anchors"]
)


def _check_temperature(temperature):
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            "`temperature` must be a finite number > 0 (the paper uses 0.1 for "
            f"ImageNet, 0.5 for CIFAR-10). Received: temperature={temperature!r}"
        )


def _check_projections(z_a, z_b):
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        if len(z.shape) != 2:
            raise ValueError(
                f"`{name}` must be a rank-2 tensor of projections with shape "
                f"(batch_size, dim). Received: {name}.shape={tuple(z.shape)}"
            )
    if any(
        a is not None and b is not None and a != b for a, b in zip(z_a.shape, z_b.shape)
    ):
        raise ValueError(
            "`z_a` and `z_b` must have the same shape: row i of each holds a view "
            f"of example i. Received: z_a.shape={tuple(z_a.shape)}, "
            f"z_b.shape={tuple(z_b.shape)}"
        )


def _compute_dtype(*tensors):
    # float16/bfloat16 similarities lose the precision small temperatures need, and
    # the mask would overflow; float64 stays float64 for exact gradient checks.
    if any(keras.backend.standardize_dtype(t.dtype) == "float64" for t in tensors):
        return "float64"
    return "float32"


def _l2_normalize(z):
    # Clamped before the rsqrt, unlike `ops.normalize`, whose gradient is nan for an
    # all-zero row; the bound is `tf.math.l2_normalize`'s.
    squared_norm = ops.sum(ops.square(z), axis=1, keepdims=True)
    return z * ops.rsqrt(ops.maximum(squared_norm, 1e-12))


def _nt_xent_terms(z_a, z_b, temperature, normalize):
    """Per-anchor losses of this replica's 2n anchors against all 2N candidates."""
    dtype = _compute_dtype(z_a, z_b)
    z_a = ops.cast(z_a, dtype)
    z_b = ops.cast(z_b, dtype)
    if normalize:
        z_a = _l2_normalize(z_a)
        z_b = _l2_normalize(z_b)
    n = ops.shape(z_a)[0]
    z_a_all, z_b_all = distribute.cross_replica_concat((z_a, z_b))
    global_n = ops.shape(z_a_all)[0]
    offset = distribute.replica_offset(n)

    # Dividing the (2n, d) anchors rather than the (2n, 2N) product by the
    # temperature saves a pass over the largest tensor of the step.
    anchors = ops.concatenate([z_a, z_b], axis=0) / ops.convert_to_tensor(
        temperature, dtype
    )
    candidates = ops.concatenate([z_a_all, z_b_all], axis=0)
    logits = ops.matmul(anchors, ops.transpose(candidates))

    # Candidates are [views a of all replicas; views b of all replicas]; this
    # replica's example i sits at offset + i in each half.
    own = ops.cast(ops.arange(n) + offset, "int32")
    # Before the cast: a static batch size stays a Python int, which JAX's arange
    # needs under `jit`.
    columns = ops.arange(2 * global_n, dtype="int32")
    global_n = ops.cast(global_n, "int32")
    self_columns = ops.concatenate([own, own + global_n], axis=0)
    labels = ops.concatenate([own + global_n, own], axis=0)
    is_self = ops.equal(ops.expand_dims(columns, 0), ops.expand_dims(self_columns, 1))
    logits = ops.where(is_self, ops.convert_to_tensor(-LARGE_NUM, dtype), logits)

    # The fused softmax cross-entropy keeps one (2n, 2N) matrix for the backward
    # pass where log_softmax + gather keep several (peak 386 -> 131 MiB at N=2048).
    per_anchor_loss = ops.sparse_categorical_crossentropy(
        labels, logits, from_logits=True
    )
    return _Terms(per_anchor_loss, logits, labels, 2 * global_n)


def contrastive_accuracy(logits, labels):
    """Whether each anchor's positive ranks first among its candidates.

    The top-1 accuracy of the contrastive prediction task SimCLR logs during
    pretraining (reference `contrast_acc`). Here it ranks the positive among all
    2N - 1 candidates (the reference only ranks it against the other view's
    column block), i.e. it is the accuracy of the task the loss trains. Ties go to
    the lower column, as with `argmax`.

    Args:
        logits: `(anchors, candidates)` scores, e.g. `nt_xent(...).logits`, with the
            self-similarity already masked.
        labels: `(anchors,)` integer column of each anchor's positive.

    Returns:
        `(anchors,)` float32 tensor of 1.0 (positive ranked first) or 0.0.

    Example:

    ```python
    result = keras_simclr.losses.nt_xent(z_a, z_b)
    accuracy = ops.mean(keras_simclr.losses.contrastive_accuracy(
        result.logits, result.labels))
    ```
    """
    predicted = ops.cast(ops.argmax(logits, axis=1), "int32")
    return ops.cast(ops.equal(predicted, ops.cast(labels, "int32")), "float32")


def contrastive_entropy(logits):
    """The entropy of each anchor's softmax over its candidates, in nats.

    SimCLR's reference logs it as `contrast_entropy`: it starts near ln(2N - 1)
    (uniform over the candidates) and falls as the positive takes the probability
    mass. A masked column (`-LARGE_NUM`) has probability exactly 0 and adds 0.

    Args:
        logits: `(anchors, candidates)` scores, e.g. `nt_xent(...).logits`.

    Returns:
        `(anchors,)` float32 tensor (float64 for float64 logits).

    Example:

    ```python
    result = keras_simclr.losses.nt_xent(z_a, z_b)
    entropy = ops.mean(keras_simclr.losses.contrastive_entropy(result.logits))
    ```
    """
    logits = ops.cast(logits, _compute_dtype(logits))
    # H = log(sum e) - sum(e * s) / sum(e) with s = logits - max and e = exp(s):
    # fewer passes over the (2n, 2N) logits than materialising log_softmax, exp
    # and their product. A masked column has e = 0 and adds 0 * s = 0.
    shifted = logits - ops.max(logits, axis=1, keepdims=True)
    unnormalized = ops.exp(shifted)
    total = ops.sum(unnormalized, axis=1)
    return ops.log(total) - ops.sum(unnormalized * shifted, axis=1) / total


def nt_xent(z_a, z_b, temperature=0.1, normalize=True):
    """The NT-Xent loss of SimCLR, with its logits, labels and metrics.

    The normalized temperature-scaled cross-entropy of SimCLR (Section 2.1, Eq. 1):
    with sim(u, v) = u.v / (|u| |v|), the loss of anchor i whose positive is j is
    `-log(exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t))`, and the
    loss is its mean over all 2N anchors, both views of each example taking a turn
    (Algorithm 1). The self-similarity is masked with `-LARGE_NUM` as in the
    reference implementation. Similarities are computed in float32 (float64 for
    float64 inputs), also for float16/bfloat16 projections, so no inf or nan
    appears. The reference's `add_contrastive_loss` adds the means of the two
    directions, i.e. returns twice this value; this follows the paper's 1/2N.

    Across replicas (Section 2.2): inside the replica context of a
    `tf.distribute` strategy with R replicas each holding n examples (N = R n),
    the candidates are the projections of all replicas and each replica scores
    only its own 2n anchors. One device with the global batch minimises
    `L = 1/(2N) sum_k l_k` over all 2N anchors; replica r returns
    `L_r = 1/(2N) sum_{k in its anchors} l_k`, so `sum_r L_r = L`. Every `l_k`
    depends on all replicas' projections through the gather, whose gradient sums
    what the replicas computed for each gathered row and returns it to the row's
    owner: replica s receives `dL/dz_s` and back-propagates it through its copy
    of the network to `dL/dz_s . dz_s/dtheta`. Keras' optimizer sums these over
    replicas, giving exactly the one-device gradient `dL/dtheta`. Dividing by the
    local 2n anchors instead would multiply it by R; the reference divides its
    per-replica mean by R afterwards (google-research/simclr#202), which is the
    same 1/(2N). Outside a strategy (or with one replica) the share is the mean.

    Args:
        z_a: `(n, d)` projections of the first view of this replica's n examples.
        z_b: `(n, d)` projections of the second view, row i pairing with row i
            of `z_a`.
        temperature: float > 0, the softmax temperature t (paper: 0.1 for
            ImageNet at batch 4096, 0.5 for CIFAR-10; Table 5 sweeps it).
        normalize: whether to l2-normalise the projections first (the cosine
            similarity of the paper). With `False` the raw dot product is used.

    Returns:
        An `NTXentResult(loss, accuracy, entropy, logits, labels)`: `loss`,
        `accuracy` and `entropy` are scalars, this replica's share of the
        global mean over all 2N anchors (sum over the local anchors / 2N; the
        means themselves without a strategy); log them through
        `keras_simclr.distribute.sum_across_replicas`. `logits` is `(2n, 2N)`,
        rows = [views a; views b] of this replica, columns = [views a of all
        replicas; views b of all replicas]; `labels` is `(2n,)` int32, the column
        of each anchor's positive. Floats are float32 (float64 for float64
        inputs).

    Example:

    ```python
    z_a = keras.random.normal((8, 128), seed=1)
    z_b = z_a + 0.1 * keras.random.normal((8, 128), seed=2)
    result = keras_simclr.losses.nt_xent(z_a, z_b, temperature=0.5)
    result.loss, result.accuracy  # scalars; logits (16, 16), labels (16,)
    ```
    """
    _check_temperature(temperature)
    z_a = ops.convert_to_tensor(z_a)
    z_b = ops.convert_to_tensor(z_b)
    _check_projections(z_a, z_b)
    terms = _nt_xent_terms(z_a, z_b, temperature, normalize)
    num_anchors = ops.cast(terms.num_anchors, terms.logits.dtype)
    # Logged, never differentiated: keep the metrics out of the backward pass.
    logits = ops.stop_gradient(terms.logits)
    accuracy = ops.cast(contrastive_accuracy(logits, terms.labels), logits.dtype)
    entropy = contrastive_entropy(logits)
    return NTXentResult(
        loss=ops.sum(terms.per_anchor_loss) / num_anchors,
        accuracy=ops.sum(accuracy) / num_anchors,
        entropy=ops.sum(entropy) / num_anchors,
        logits=terms.logits,
        labels=terms.labels,
    )


@keras.saving.register_keras_serializable(package="keras_simclr")
class NTXent(keras.losses.Loss):
    """The NT-Xent loss of SimCLR as a `keras.losses.Loss`.

    SimCLR's contrastive loss (Section 2.1, Eq. 1, Algorithm 1) for models that
    output both views' projections of each example: `y_pred` has shape
    `(batch_size, 2, dim)`, `y_pred[:, 0]` and `y_pred[:, 1]` the two views. The
    views are stacked on axis 1 (not concatenated on axis 0) so that a
    distribution strategy splitting the batch keeps the pairs together. See
    `nt_xent` for the formula and the cross-replica behaviour: under
    `tf.distribute` the negatives come from all replicas. `y_true` is ignored and
    may be `None` (`model.fit(x)` without labels). The loss of an example is the
    mean of its two views' anchor losses, so the default reduction gives the mean
    over the 2N anchors, and Keras' own division by the replica count makes the
    summed replica gradients equal the one-device gradient. The similarities are
    computed in float32 whatever the dtype policy.

    Args:
        temperature: float > 0, the softmax temperature (paper: 0.1 for ImageNet,
            0.5 for CIFAR-10).
        normalize: whether to l2-normalise the projections (cosine similarity).
        reduction: Keras loss reduction: `"sum_over_batch_size"` (the paper's
            mean), `"sum"`, `"mean"`, `"mean_with_sample_weight"`, or `None` for
            the `(batch_size,)` per-example losses.
        name: name of the loss.

    Call arguments:
        y_true: ignored (`None` allowed).
        y_pred: `(batch_size, 2, dim)` projections of the two views.
        sample_weight: optional `(batch_size,)` weights of the examples.

    Example:

    ```python
    inputs = keras.Input((2, 32))                      # two views per example
    z = keras.layers.Dense(16)(inputs)                 # applied to each view
    model = keras.Model(inputs, z)
    model.compile(optimizer="sgd", loss=keras_simclr.losses.NTXent(temperature=0.5))
    model.fit(np.random.rand(64, 2, 32), epochs=1, batch_size=16)
    ```
    """

    def __init__(
        self,
        temperature=0.1,
        normalize=True,
        reduction="sum_over_batch_size",
        name="nt_xent",
    ):
        _check_temperature(temperature)
        # The similarities must be float32 (see LARGE_NUM), so the inputs are cast to
        # it whatever the global dtype policy.
        super().__init__(name=name, reduction=reduction, dtype="float32")
        self.temperature = float(temperature)
        self.normalize = bool(normalize)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The targets come from the pairing of the views: Keras passes y_true=None
        # for `fit(x)`, which the base class cannot convert to a tensor.
        if y_true is None:
            y_true = ops.zeros((ops.shape(y_pred)[0],))
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        if len(y_pred.shape) != 3 or y_pred.shape[1] != 2:
            raise ValueError(
                "`NTXent` expects y_pred of shape (batch_size, 2, dim): the "
                "projections of the two views of each example, stacked on axis 1. "
                f"Received: y_pred.shape={tuple(y_pred.shape)}"
            )
        terms = _nt_xent_terms(
            y_pred[:, 0], y_pred[:, 1], self.temperature, self.normalize
        )
        n = ops.shape(y_pred)[0]
        return (terms.per_anchor_loss[:n] + terms.per_anchor_loss[n:]) / 2

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "normalize": self.normalize})
        return config
