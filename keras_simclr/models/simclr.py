"""The SimCLR task: encoder + projection head trained with NT-Xent via `fit()`."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_simclr import distribute
from keras_simclr import losses
from keras_simclr import optimizers
from keras_simclr.images import to_unit_float
from keras_simclr.models import heads

# Order matters: the step sums these shares across replicas in one all-reduce.
_CONTRASTIVE_METRICS = ("loss", "contrastive_accuracy", "contrastive_entropy")
_PROBE_METRICS = ("probe_loss", "probe_accuracy")
# The factor on `losses.nt_xent` (the paper's mean over the 2N anchors) that each
# objective trains on. The reference's `add_contrastive_loss` adds the means of the
# two directions, twice the paper's value.
OBJECTIVES = {"reference": 2.0, "paper": 1.0}


@keras.saving.register_keras_serializable(package="keras_simclr")
class SimCLR(keras.Model):
    """SimCLR: contrastive pretraining of an encoder with `model.fit()`.

    Implements the training procedure of Chen et al., "A Simple Framework for
    Contrastive Learning of Visual Representations" (ICML 2020), Algorithm 1: two
    augmented views of every image go through the encoder f (to h) and the projection
    head g (to z) in one concatenated batch, so that batch normalisation sees both
    views as in the reference code; the NT-Xent loss scores each replica's anchors
    against the projections of all replicas (negatives gathered across accelerators,
    Section 3 / Appendix B.1), scaled so that the gradients `tf.distribute` sums equal
    the single-device gradient of the global batch.

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
        name="simclr",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not isinstance(encoder, keras.Model):
            raise ValueError(
                "`encoder` must be a keras.Model mapping images to features. "
                f"Received: encoder={encoder!r}"
            )
        if not isinstance(projection_head, keras.Model):
            raise ValueError(
                "`projection_head` must be a keras.Model mapping features to "
                f"projections. Received: projection_head={projection_head!r}"
            )
        if len(encoder.outputs) != 1 or len(encoder.outputs[0].shape) != 2:
            raise ValueError(
                "`encoder` must output one 2-D tensor (batch, features); use "
                "`pooling='avg'` for keras.applications models. Received output "
                f"shapes: {[tuple(o.shape) for o in encoder.outputs]}"
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
        if not isinstance(l2_weight_decay, (int, float)) or not l2_weight_decay >= 0:
            raise ValueError(
                "`l2_weight_decay` must be a float >= 0 (0 disables it). Received: "
                f"l2_weight_decay={l2_weight_decay!r}"
            )
        if not isinstance(probe_batch_norm, (bool, np.bool_)):
            raise ValueError(
                "`probe_batch_norm` must be a bool. Received: "
                f"probe_batch_norm={probe_batch_norm!r}"
            )
        if num_classes is not None and (
            not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(
                "`num_classes` must be an integer >= 2, or None for no linear "
                f"probe. Received: num_classes={num_classes!r}"
            )
        self.encoder = encoder
        self.projection_head = projection_head
        self.augmenter = augmenter
        self.temperature = float(temperature)
        self.num_classes = num_classes
        self.objective = objective
        self.l2_weight_decay = float(l2_weight_decay)
        self.probe_batch_norm = bool(probe_batch_norm)
        feature_dim = encoder.outputs[0].shape[-1]
        self.probe = (
            heads.linear_probe(
                feature_dim,
                num_classes,
                use_bn=self.probe_batch_norm,
                synchronized_bn=True,
                name="linear_probe",
            )
            if num_classes
            else None
        )
        self.probe_optimizer = None
        names = _CONTRASTIVE_METRICS + (_PROBE_METRICS if num_classes else ())
        self._trackers = {n: keras.metrics.Mean(name=n) for n in names}
        # The encoder, head and probe arrive built, so the whole model is.
        self.built = True

    # Inference ---------------------------------------------------------------

    def call(self, images, training=False):
        return self.encoder(_to_float_images(images), training=training)

    # Compilation -------------------------------------------------------------

    def compile(
        self,
        optimizer="sgd",
        probe_optimizer=None,
        run_eagerly=False,
        steps_per_execution=1,
        jit_compile=False,
    ):
        """Configures the model for pretraining.

        Args:
            optimizer: optimizer of the encoder and projection head (and of the
                linear probe when `probe_optimizer` is None, as the reference does),
                e.g. `keras_simclr.optimizers.LARS`.
            probe_optimizer: optional separate optimizer for the linear probe. Without
                it the probe shares `optimizer`; a `LARS` optimizer then steps it
                with plain momentum (no weight decay, no trust ratio).
            run_eagerly: run the steps eagerly (debugging).
            steps_per_execution: steps per `tf.function` call.
            jit_compile: compile the step with XLA. Off by default: on CPU XLA made
                the step slower; TPUs compile with XLA regardless.
        """
        super().compile(
            optimizer=optimizer,
            run_eagerly=run_eagerly,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
        )
        if probe_optimizer is not None and self.probe is None:
            raise ValueError(
                "`probe_optimizer` was given but the model has no linear probe; "
                "construct SimCLR with `num_classes=...` to train one."
            )
        self.probe_optimizer = (
            keras.optimizers.get(probe_optimizer) if probe_optimizer else None
        )
        self._compile_config.config["probe_optimizer"] = self.probe_optimizer

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(
            optimizer=config.get("optimizer", "sgd"),
            probe_optimizer=config.get("probe_optimizer"),
            run_eagerly=config.get("run_eagerly", False),
            steps_per_execution=config.get("steps_per_execution", 1),
            jit_compile=config.get("jit_compile", False),
        )
        self._build_optimizers()

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _encoder_variables(self):
        return self.encoder.trainable_variables + self.projection_head.trainable_variables

    def _build_optimizers(self):
        with self.distribute_strategy.scope():
            if self.probe_optimizer is None:
                if not self.optimizer.built:
                    if self.probe is not None and isinstance(
                        self.optimizer, optimizers.LARS
                    ):
                        self.optimizer.exclude_from_layer_adaptation_and_decay(
                            self.probe.trainable_variables
                        )
                    self.optimizer.build(self.trainable_variables)
            else:
                if not self.optimizer.built:
                    self.optimizer.build(self._encoder_variables())
                if not self.probe_optimizer.built:
                    self.probe_optimizer.build(self.probe.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' version builds the model from one input batch reduced with
        # strategy.reduce("MEAN"), which fails under MultiWorkerMirroredStrategy
        # (keras-team/keras#20585). Every layer here is built at construction, so
        # only the optimizers' slots remain to be created, under the strategy scope.
        self._build_optimizers()

    # Training ----------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        strategy = self.distribute_strategy
        replicas = strategy.num_replicas_in_sync
        if replicas > 1 and _is_array_data(x):
            # Keras' array adapter ends an epoch with a partial batch, which cannot
            # be split evenly over the replicas; drop it instead.
            x, y, batch_size = _arrays_to_dataset(
                x, y, batch_size, kwargs.get("shuffle", True), replicas
            ), None, None
        _check_global_batch(
            x, batch_size, replicas, static=isinstance(strategy, tf.distribute.TPUStrategy)
        )
        return super().fit(x, y, batch_size=batch_size, **kwargs)

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        labels = self._labels(y)
        view_1, view_2 = self._views(x, training=True)
        n = ops.shape(view_1)[0]
        encoder_variables = self._encoder_variables()
        probe_variables = self.probe.trainable_variables if self.probe else []
        with tf.GradientTape() as tape:
            h = self.encoder(ops.concatenate([view_1, view_2], axis=0), training=True)
            z = ops.cast(self.projection_head(h, training=True), "float32")
            result = losses.nt_xent(z[:n], z[n:], temperature=self.temperature)
            contrastive = OBJECTIVES[self.objective] * result.loss
            total = contrastive + self._regularization_share()
            shares = [contrastive, result.accuracy, result.entropy]
            if labels is not None:
                probe_loss, probe_accuracy = self._probe_shares(h, labels, training=True)
                total = total + probe_loss
                shares += [probe_loss, probe_accuracy]
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, encoder_variables + probe_variables)
        if self.probe_optimizer is None:
            self.optimizer.apply_gradients(
                zip(gradients, encoder_variables + probe_variables)
            )
        else:
            split = len(encoder_variables)
            self.optimizer.apply_gradients(
                zip(gradients[:split], encoder_variables)
            )
            self.probe_optimizer.apply_gradients(
                zip(gradients[split:], probe_variables)
            )
        return self._log(shares)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        labels = self._labels(y)
        shares = []
        names = []
        if isinstance(x, (tuple, list)) or self.augmenter is not None:
            view_1, view_2 = self._views(x, training=True)
            n = ops.shape(view_1)[0]
            h = self.encoder(ops.concatenate([view_1, view_2], axis=0), training=False)
            z = ops.cast(self.projection_head(h, training=False), "float32")
            result = losses.nt_xent(z[:n], z[n:], temperature=self.temperature)
            contrastive = OBJECTIVES[self.objective] * result.loss
            shares += [contrastive, result.accuracy, result.entropy]
            names += list(_CONTRASTIVE_METRICS)
        if labels is not None:
            images = x[0] if isinstance(x, (tuple, list)) else x
            images = self._checked_images(images, "validation images")
            h = self.encoder(images, training=False)
            probe_loss, probe_accuracy = self._probe_shares(
                h, labels, training=False, both_views=False
            )
            shares += [probe_loss, probe_accuracy]
            names += list(_PROBE_METRICS)
        if not shares:
            raise ValueError(
                "Nothing to evaluate: give labels (with `num_classes` set) for the "
                "linear probe, two views `(view_1, view_2)`, or an `augmenter` for "
                "the contrastive loss."
            )
        return self._log(shares, names)

    # Step pieces -------------------------------------------------------------

    def _views(self, x, training):
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ValueError(
                    "Pre-made views must be a pair (view_1, view_2). Received "
                    f"{len(x)} tensors."
                )
            view_1 = self._checked_images(x[0], "view_1")
            view_2 = self._checked_images(x[1], "view_2")
            if view_1.shape[1:] != view_2.shape[1:]:
                raise ValueError(
                    "The two views must have the same shape. Received "
                    f"{tuple(view_1.shape)} and {tuple(view_2.shape)}."
                )
            return view_1, view_2
        if self.augmenter is None:
            raise ValueError(
                "SimCLR received a batch of images but has no `augmenter` to make "
                "the two views. Pass `augmenter=keras_simclr.augment.SimCLRAugment"
                "(...)` to SimCLR, or give the pair `(view_1, view_2)` from the "
                "input pipeline (keras_simclr.data.pretraining_dataset(augment=...))."
            )
        _check_rank(x, "images")
        view_1 = self.augmenter(x, training=training)
        view_2 = self.augmenter(x, training=training)
        return (
            self._checked_images(view_1, "augmented view"),
            self._checked_images(view_2, "augmented view"),
        )

    def _checked_images(self, images, what):
        _check_rank(images, what)
        expected = tuple(self.encoder.inputs[0].shape[1:])
        received = tuple(images.shape[1:])

        def message(shape):
            return (
                f"The {what} have shape (batch,) + {shape} but the encoder takes "
                f"(batch,) + {expected}. Resize the images in the input pipeline or "
                "give the augmenter the encoder's image size."
            )

        if any(e is not None and r is not None and e != r for e, r in zip(expected, received)):
            raise ValueError(message(received))
        # A retraced step (a second fit() with other shapes) relaxes dimensions to
        # None, so the static check above sees nothing: check at run time too.
        unknown = [i for i, (e, r) in enumerate(zip(expected, received)) if e and r is None]
        if unknown:
            actual = tf.gather(tf.shape(images)[1:], unknown)
            check = tf.debugging.assert_equal(
                actual,
                tf.constant([expected[i] for i in unknown], dtype=actual.dtype),
                message=message("(the dimensions printed below, at run time)"),
            )
            with tf.control_dependencies([check]):
                images = tf.identity(images)
        return _to_float_images(images)

    def _labels(self, y):
        if y is None:
            return None
        if len(y.shape) > 2:
            raise ValueError(
                f"The labels have shape {tuple(y.shape)}, like images: a dataset whose "
                "elements are (view_1, view_2) is read by Keras as (x, y). Make the "
                "elements ((view_1, view_2),) or ((view_1, view_2), labels)."
            )
        if self.probe is None:
            raise ValueError(
                "The batches carry labels but the model has no linear probe. "
                "Construct SimCLR with `num_classes=...` to train the online linear "
                "probe, or drop the labels from the input pipeline."
            )
        return ops.cast(ops.reshape(y, (-1,)), "int32")

    def _probe_shares(self, h, labels, training, both_views=True):
        """The probe's loss and accuracy as this replica's share of the global mean."""
        if both_views:
            labels = ops.concatenate([labels, labels], axis=0)
        logits = ops.cast(self.probe(ops.stop_gradient(h), training=training), "float32")
        count = ops.cast(ops.shape(labels)[0] * distribute.num_replicas(), "float32")
        per_example = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )
        correct = ops.cast(
            ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels), "float32"
        )
        return ops.sum(per_example) / count, ops.sum(correct) / count

    def _regularization_share(self):
        terms = [ops.cast(ops.sum(self.losses), "float32")] if self.losses else []
        if self.l2_weight_decay:
            decayed = [
                ops.sum(ops.square(ops.cast(v, "float32")))
                for v in self.trainable_variables
                if not optimizers.is_batch_norm_parameter(v)
            ]
            terms.append(self.l2_weight_decay * ops.sum(ops.stack(decayed)) / 2)
        if not terms:
            return 0.0
        # Regularisers are global terms; each replica contributes 1/R of them so
        # that the gradients summed over replicas count them once.
        return ops.sum(ops.stack(terms)) / distribute.num_replicas()

    def _log(self, shares, names=None):
        names = names or list(self._trackers)[: len(shares)]
        totals = distribute.sum_across_replicas(ops.stack([ops.cast(s, "float32") for s in shares]))
        for i, name in enumerate(names):
            self._trackers[name].update_state(totals[i])
        logs = {name: self._trackers[name].result() for name in names}
        if _spans_workers(self.distribute_strategy):
            # Keras reduces the logs of a multi-worker step with
            # strategy.reduce("MEAN", v, axis=0), which rejects scalars
            # (keras-team/keras#20585); the values are already global, so give
            # them the axis to average over.
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    # Serialisation -----------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            projection_head=keras.saving.serialize_keras_object(self.projection_head),
            augmenter=(
                keras.saving.serialize_keras_object(self.augmenter)
                if self.augmenter is not None
                else None
            ),
            temperature=self.temperature,
            num_classes=self.num_classes,
            objective=self.objective,
            l2_weight_decay=self.l2_weight_decay,
            probe_batch_norm=self.probe_batch_norm,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Models saved before the option existed have the reference's probe.
        config.setdefault("probe_batch_norm", False)
        for key in ("encoder", "projection_head", "augmenter"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _spans_workers(strategy):
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def _check_rank(images, what):
    if images.shape.rank != 4:
        raise ValueError(
            f"SimCLR expects {what} as a 4-D batch (batch, height, width, channels). "
            f"Received shape {tuple(images.shape)}."
        )


def _to_float_images(images):
    return to_unit_float(ops.convert_to_tensor(images))


def _is_array_data(x):
    leaves = tf.nest.flatten(x) if isinstance(x, (tuple, list)) else [x]
    return bool(leaves) and all(
        isinstance(leaf, (np.ndarray, tf.Tensor)) for leaf in leaves
    )


def _arrays_to_dataset(x, y, batch_size, shuffle, replicas):
    batch_size = batch_size or 32
    distribute.per_replica_batch_size(batch_size, replicas)
    elements = tuple(x) if isinstance(x, (tuple, list)) else x
    dataset = tf.data.Dataset.from_tensor_slices(
        (elements,) if y is None else (elements, y)
    )
    if shuffle:
        dataset = dataset.shuffle(len(tf.nest.flatten(x)[0]), reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _check_global_batch(x, batch_size, replicas, static=False):
    """Fails early, before tracing, when the global batch cannot be split evenly.

    Replicas may hold different numbers of examples (a partial last batch): the
    loss gathers the sizes. TPUs need static shapes, hence `static`.
    """
    if replicas <= 1 and not static:
        return
    if isinstance(x, tf.data.Dataset):
        leaves = tf.nest.flatten(x.element_spec)
        size = leaves[0].shape[0] if leaves and leaves[0].shape.rank else None
        if size is None and static:
            raise ValueError(
                "Training SimCLR on TPUs needs a static global batch size: batch the "
                "dataset with `drop_remainder=True` and a batch size that is a "
                f"multiple of {replicas}."
            )
    else:
        size = batch_size
    if size is not None:
        distribute.per_replica_batch_size(size, replicas)
