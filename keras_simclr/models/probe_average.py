"""The online probe scored by a moving average of its weights.

The probe chases an encoder that moves. Trained at a constant rate it keeps up,
and an exponential moving average of its dense weights removes each step's
noise; `SelfSupervisedModel(probe_average=m)` keeps that average beside the probe
and scores the probe with it (docs/quality_study.md, "The probe's recipe,
replayed"). Both training steps call `_update_probe_averages` (TensorFlow) or
`_averaged` (JAX's stateless step) after the probe's update.
"""

import numpy as np
from keras import ops


def checked_momentum(probe_average):
    """`probe_average` as a float, refused outside [0, 1)."""
    if isinstance(probe_average, bool) or not isinstance(
        probe_average, (int, float, np.floating)
    ) or not 0 <= probe_average < 1:
        raise ValueError(
            "`probe_average` must be a momentum in [0, 1) (0: no average). "
            f"Received: probe_average={probe_average!r}"
        )
    return float(probe_average)


class ProbeAverage:
    """The moving average of the online probe's kernel and bias, and its logits.

    With `probe_average` above 0 the model keeps an exponential moving average of
    the probe's dense weights, updated after every step, and scores the probe with
    it (`val_probe_*`, `probe_logits(h)`); the training metrics still read the
    weights being trained. 0 scores the trained weights.
    """

    def _probe_dense(self):
        return self.probe.get_layer("linear_probe_dense")

    def _make_probe_averages(self):
        """The average of the probe's kernel and bias, starting at their values.

        Each is an attribute of its own, which `tf.train.Checkpoint` tracks
        (`model/probe_average_kernel`), as it does a layer's weights.
        """
        if self.probe is None or not self.probe_average:
            return
        dense = self._probe_dense()
        for weight, name in zip((dense.kernel, dense.bias), ("kernel", "bias")):
            # Every replica computes the same value; the first one's is kept.
            average = self.add_weight(
                shape=weight.shape, initializer="zeros", trainable=False,
                name=f"probe_average_{name}", aggregation="only_first_replica",
            )
            # A copy: JAX donates the step's buffers, which must be distinct.
            average.assign(ops.copy(weight.value))
            setattr(self, f"probe_average_{name}", average)

    @property
    def _probe_averages(self):
        """`[kernel, bias]` of the probe's moving average, or `[]` without one."""
        kernel = getattr(self, "probe_average_kernel", None)
        return [kernel, self.probe_average_bias] if kernel is not None else []

    def _averaged(self, averages, weights):
        """The moving averages after one more step of the probe's weights."""
        m = self.probe_average
        return [m * a + (1.0 - m) * ops.cast(w, a.dtype) for a, w in zip(averages, weights)]

    def _update_probe_averages(self):
        if self._probe_averages:
            dense = self._probe_dense()
            new = self._averaged(
                [a.value for a in self._probe_averages], [dense.kernel, dense.bias]
            )
            for average, value in zip(self._probe_averages, new):
                average.assign(value)

    def probe_logits(self, h, training=False):
        """The online probe's logits on h: its moving average's with `probe_average`.

        Args:
            h: encodings `(batch, features)`.
            training: batch-norm mode of the probe's standardisation (the average
                is only read in inference, `training=False`).

        Returns:
            float32 logits `(batch, num_classes)`.
        """
        if self.probe is None:
            raise ValueError(
                f"This {type(self).__name__} has no linear probe; construct it with "
                "`num_classes=...` to train one."
            )
        if not self._probe_averages or training:
            return ops.cast(self.probe(h, training=training), "float32")
        x = h
        if self.probe_batch_norm:
            x = self.probe.get_layer("linear_probe_bn")(h, training=False)
        kernel, bias = self._probe_averages
        return ops.matmul(ops.cast(x, "float32"), kernel) + bias
