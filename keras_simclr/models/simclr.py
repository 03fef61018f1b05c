"""The SimCLR task: encoder + projection head trained with NT-Xent via `fit()`."""

import keras
from keras import ops

from keras_simclr import losses
from keras_simclr.models.base import SelfSupervisedModel
# The TPU batch check's former home; tests and callers import it from here.
from keras_simclr.models.inputs import check_global_batch as _check_global_batch  # noqa: F401

# The factor on `losses.nt_xent` (the paper's mean over the 2N anchors) that each
# objective trains on. The reference's `add_contrastive_loss` adds the means of the
# two directions, twice the paper's value.
OBJECTIVES = {"reference": 2.0, "paper": 1.0}


@keras.saving.register_keras_serializable(package="keras_simclr")
class SimCLR(SelfSupervisedModel):
    """SimCLR: contrastive pretraining of an encoder with `model.fit()`.

    Implements the training procedure of Chen et al., "A Simple Framework for
    Contrastive Learning of Visual Representations" (ICML 2020), Algorithm 1: two
    augmented views of every image go through the encoder f (to h) and the projection
    head g (to z) in one concatenated batch, so that batch normalisation sees both
    views as in the reference code; the NT-Xent loss scores each replica's anchors
    against the projections of all replicas (negatives gathered across accelerators,
    Section 3 / Appendix B.1), scaled so that the gradients `tf.distribute` sums equal
    the single-device gradient of the global batch. The method-neutral parts (views,
    encoder pass, online probe, logs, checks, saving) are `SelfSupervisedModel`'s;
    SimCLR is the projection head and the objective (`compute_objective`).

    When `num_classes` is set and the batches carry labels, an online linear probe on
    `stop_gradient(h)` trains at the same time (the reference's linear evaluation
    during pretraining); its gradient never reaches the encoder. Sharing a `LARS`
    optimizer, the probe gets neither its weight decay nor its trust ratio (plain
    momentum at the full learning rate), as the reference's `head_supervised`.

    The objective. The paper's NT-Xent (`keras_simclr.losses.nt_xent`) is the mean
    over the 2N anchors; the reference implementation trains on the sum of the two
    directions' means, twice that (`objective="reference"`, the default). Under
    LARS the factor is not a learning-rate change: the trust ratio cancels it for
    the weights but not for batch-norm parameters and biases, and it halves the
    weight decay's relative pull. The reference's hyperparameters (learning rate,
    weight decay) reproduce the reference's training only on its objective;
    `objective="paper"` trains on the paper's mean. The logged `loss` is the
    objective trained on (ln(2N - 1) times 2 or 1 at chance).

    Args:
        encoder: a `keras.Model` mapping image batches (float32 in [0, 1]) to 2-D
            representations h, e.g. `keras_simclr.models.resnet(...)` or a
            `keras.applications` model with `include_top=False, pooling="avg"`.
        projection_head: a `keras.Model` mapping h to z, e.g.
            `keras_simclr.models.projection_head(...)`.
        augmenter: optional layer making one random view of an image batch
            (e.g. `keras_simclr.augment.SimCLRAugment`). When given, batches of plain
            images are augmented inside the training step (on the accelerator);
            without it the input pipeline must provide the two views.
        temperature: NT-Xent temperature tau, > 0 (0.1 for ImageNet, 0.5 for the
            reference's CIFAR-10 command).
        num_classes: number of classes of the online linear probe, or `None` for
            no probe.
        objective: `"reference"` (default; twice the paper's NT-Xent, as the
            reference trains) or `"paper"` (the mean over the 2N anchors).
        probe_batch_norm: bool; standardise h (a batch norm without scale and
            offset, statistics over the global batch) before the probe's dense
            layer, as the linear evaluation standardises h. The probe then learns
            at one learning rate whatever the scale of h, which drifts as the
            encoder trains. Defaults to `True`; `False` is the reference's probe
            (a dense layer on h as it is). It never touches the encoder.
        probe_on: `"views"` (default, the reference: the probe trains on h of
            both augmented views) or `"images"` (on h of the clean images, one more
            forward pass in inference mode: the images given to `augmenter`, or
            the ones the input pipeline carries beside the views,
            `keras_simclr.data.pretraining_dataset(..., probe_images=True)`). The
            linear evaluation reads clean images, so a probe trained on them ends
            closer to it; the views are harder than the images they come from.
        probe_average: float in [0, 1): the momentum of an exponential moving
            average of the probe's dense weights that scores the probe
            (`val_probe_*`, `probe_logits(h)`), 0 (the default) for none. The
            probe chases an encoder that moves: at a constant learning rate it
            keeps up, and the average removes its step-to-step noise (the job
            trains it so: `--probe_average=0.98`).
        l2_weight_decay: float >= 0; adds `l2_weight_decay * sum(w**2) / 2` over
            every trainable weight except batch-norm parameters (probe included)
            to the training objective: the reference's weight decay for optimizers
            other than LARS (`model.add_weight_decay`). Leave it 0 with `LARS`,
            which decays inside its update, and with optimizers given their own
            `weight_decay`.
        name: model name.

    Call arguments:
        images: a batch of images (uint8 in [0, 255] or float in [0, 1]) at the
            encoder's input size. Returns h, the representation used downstream.

    Training data (`fit(x, ...)`), one of:
        - images `(B, H, W, C)` (needs `augmenter`), optionally with labels `y`;
        - two views `(view_1, view_2)`, each `(B, H, W, C)`, optionally with labels.

    Example:

    ```python
    encoder = keras_simclr.models.resnet(18, input_shape=(32, 32, 3))
    model = keras_simclr.models.SimCLR(
        encoder,
        keras_simclr.models.projection_head(encoder.output_shape[-1]),
        augmenter=keras_simclr.augment.SimCLRAugment(32, preset="cifar"),
        temperature=0.5,
    )
    model.compile(optimizer=keras_simclr.optimizers.LARS(1.0))
    model.fit(images, batch_size=256, epochs=1)
    ```
    """

    objective_metrics = ("loss", "contrastive_accuracy", "contrastive_entropy")
    serialized_arguments = ("encoder", "projection_head", "augmenter")

    def __init__(
        self,
        encoder,
        projection_head,
        augmenter=None,
        temperature=0.1,
        num_classes=None,
        objective="reference",
        l2_weight_decay=0.0,
        probe_batch_norm=True,
        probe_on="views",
        probe_average=0.0,
        name="simclr",
        **kwargs,
    ):
        if not isinstance(projection_head, keras.Model):
            raise ValueError(
                "`projection_head` must be a keras.Model mapping features to "
                f"projections. Received: projection_head={projection_head!r}"
            )
        super().__init__(
            encoder,
            augmenters=augmenter,
            num_classes=num_classes,
            l2_weight_decay=l2_weight_decay,
            probe_batch_norm=probe_batch_norm,
            probe_on=probe_on,
            probe_average=probe_average,
            heads={"projection_head": projection_head},
            name=name,
            **kwargs,
        )
        if not temperature > 0:
            raise ValueError(
                f"`temperature` must be > 0. Received: temperature={temperature}"
            )
        if objective not in OBJECTIVES:
            raise ValueError(
                f"`objective` must be one of {list(OBJECTIVES)}. Received: "
                f"objective={objective!r}"
            )
        self.temperature = float(temperature)
        self.objective = objective

    @property
    def augmenter(self):
        """The layer making both views, or `None` (views from the input pipeline)."""
        return self.augmenters[0] if self.augmenters else None

    def compute_objective(self, views, h, training=False):
        """NT-Xent on the projections z = g(h) of both views, and its metrics."""
        n = ops.shape(h[0])[0]
        # One head pass over both views, so that its batch norm sees them together.
        z = self.projection_head(ops.concatenate(h, axis=0), training=training)
        z = ops.cast(z, "float32")
        result = losses.nt_xent(z[:n], z[n:], temperature=self.temperature)
        return {
            "loss": OBJECTIVES[self.objective] * result.loss,
            "contrastive_accuracy": result.accuracy,
            "contrastive_entropy": result.entropy,
        }

    def get_config(self):
        config = super().get_config()
        augmenters = config.pop("augmenters")
        config.update(
            projection_head=keras.saving.serialize_keras_object(self.projection_head),
            augmenter=augmenters[0] if augmenters and len(augmenters) == 1 else augmenters,
            temperature=self.temperature,
            objective=self.objective,
        )
        return config
