"""The method-neutral self-supervised model: views, encoder, online probe, logging.

A method (SimCLR, a BYOL-like method, ...) subclasses `SelfSupervisedModel`, passes its
modules (heads, predictors) to the base's `__init__`, lists its logged values in
`objective_metrics` and implements one hook, `compute_objective(views, h, training)`.
Everything else is here: making the views, the encoder pass, the online linear probe
and its optimizer, regularisation, replica-correct logs, batch and shape checks, the
`fit()` override, compilation and serialisation.

The step runs on Keras' TensorFlow backend (a `tf.GradientTape` step, replicas of a
`tf.distribute` strategy) and on its JAX backend (a stateless step on the global
batch, sharded by `keras.distribution`); `compute_objective` is the same on both.
"""

import keras
import numpy as np
from keras import ops

from keras_simclr import distribute
from keras_simclr import optimizers
from keras_simclr.images import to_unit_float
from keras_simclr.models import inputs
from keras_simclr.models.heads import linear_probe
from keras_simclr.models.jax_state import JaxState
from keras_simclr.models.jax_state import current_values
from keras_simclr.models.probe_average import ProbeAverage
from keras_simclr.models.probe_average import checked_momentum

# Order matters: the step sums these shares across replicas in one all-reduce.
_PROBE_METRICS = ("probe_loss", "probe_accuracy")


def replica_share(values):
    """This replica's share of the mean of `values` over the global batch.

    Summed over the replicas in sync (as the base model logs and as `tf.distribute`
    sums gradients), the shares give the mean over every replica's examples. Assumes
    replicas of equal batch size; written with `keras.ops`.

    Args:
        values: a tensor of per-example values, `(batch,)`.

    Returns:
        A float32 scalar: `sum(values) / (batch * num_replicas)`.
    """
    count = ops.cast(ops.shape(values)[0] * distribute.num_replicas(), "float32")
    return ops.sum(ops.cast(values, "float32")) / count


@keras.saving.register_keras_serializable(package="keras_simclr")
class SelfSupervisedModel(ProbeAverage, JaxState, keras.Model):
    """Base of self-supervised methods trained with `model.fit()` on views of images.

    Owns what does not depend on the method, as solo-learn's `BaseMethod` does:
    the encoder f (images to h), the views (from the input pipeline, or from one
    augmenter per view inside the step), the online linear probe on `stop_gradient(h)`
    with its own optimizer if wanted, the L2 regularisation share, the metric
    trackers and logs that are correct across replicas, the batch and shape checks,
    `fit()` on arrays under a strategy, compilation and serialisation.

    All views go through the encoder in one concatenated batch, so that batch
    normalisation sees them together as in SimCLR's reference code. A method
    subclass implements one hook:

    `compute_objective(views, h, training=False)`: given the list of views (float
    images in [0, 1], one `(batch, H, W, C)` tensor per view) and the list of their
    encodings `h` (one `(batch, features)` tensor per view), returns a dict with the
    keys of `objective_metrics`, in that order: `"loss"` (the objective trained on)
    first, then any values to log. Each value is this replica's share of the
    global value (see `replica_share`): summed over replicas, it is the value of the
    global batch, and the loss's gradients summed by `tf.distribute` are the
    single-device gradients (on JAX there is one share, the global value). Write it
    with `keras.ops`: the same hook runs in TensorFlow's `tf.GradientTape` step and
    in JAX's stateless step.

    When `num_classes` is set and the batches carry labels, the probe trains at the
    same time, on the encodings of every view (`probe_on="views"`) or of the clean
    images (`probe_on="images"`); its gradient never reaches the encoder. Sharing a
    `LARS` optimizer, the probe gets neither its weight decay nor its trust ratio.

    Args:
        encoder: a `keras.Model` mapping image batches (float32 in [0, 1]) to 2-D
            representations h.
        augmenters: `None` (the input pipeline makes the views), one layer that makes
            every view, or a list of layers, one per view (asymmetric views).
        num_classes: number of classes of the online linear probe, or `None`.
        l2_weight_decay: float >= 0; adds `l2_weight_decay * sum(w**2) / 2` over every
            trainable weight except batch-norm parameters to the objective. Leave it
            0 with `LARS` and with optimizers given their own `weight_decay`.
        probe_batch_norm: bool; standardise h (a batch norm without scale and offset,
            over the global batch) before the probe's dense layer.
        probe_on: `"views"` (the reference) or `"images"`: the probe trains on the
            clean images, encoded in inference mode by one more forward pass (the
            images given to an in-model augmenter, or the `"images"` the input
            pipeline carries beside the views). It then learns what the linear
            evaluation measures, and ends closer to it.
        probe_average: float in [0, 1): the momentum of a moving average of the
            probe's dense weights that scores it (0: none; see `ProbeAverage`).
        heads: dict of the method's modules (projection heads, predictors) by
            attribute name; the base sets them (`self.<name>`) before the probe.
            The subclass still returns them from `get_config`.
        name: model name.

    Call arguments:
        images: a batch of images (uint8 in [0, 255] or float in [0, 1]). Returns h.

    Training data (`fit(x, ...)`), one of:
        - images `(B, H, W, C)` (needs augmenters), optionally with labels `y`;
        - the views `(view_1, ..., view_V)`, each `(B, H, W, C)`, optionally with
          labels;
        - `{"views": (view_1, ..., view_V), "images": images}` with labels: the
          views and the clean images of a probe with `probe_on="images"`.

    Example (a method; `tests/test_base_model.py` trains it):

    ```python
    class Cosine(SelfSupervisedModel):
        objective_metrics = ("loss",)

        def __init__(self, encoder, predictor, **kwargs):
            super().__init__(encoder, heads={"predictor": predictor}, **kwargs)

        def compute_objective(self, views, h, training=False):
            p = ops.normalize(self.predictor(h[0], training=training))
            target = ops.stop_gradient(ops.normalize(h[1]))
            return {"loss": replica_share(-ops.sum(p * target, axis=-1))}
    ```
    """

    # The number of views a step makes; a method with more views overrides it.
    num_views = 2
    # The names `compute_objective` returns, in order; "loss" is trained on.
    objective_metrics = ("loss",)
    # Constructor arguments that are Keras objects, (de)serialised by the base.
    serialized_arguments = ("encoder",)

    def __init__(
        self,
        encoder,
        augmenters=None,
        num_classes=None,
        l2_weight_decay=0.0,
        probe_batch_norm=True,
        probe_on="views",
        probe_average=0.0,
        heads=None,
        name=None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not isinstance(encoder, keras.Model):
            raise ValueError(
                "`encoder` must be a keras.Model mapping images to features. "
                f"Received: encoder={encoder!r}"
            )
        if len(encoder.outputs) != 1 or len(encoder.outputs[0].shape) != 2:
            raise ValueError(
                "`encoder` must output one 2-D tensor (batch, features); use "
                "`pooling='avg'` for keras.applications models. Received output "
                f"shapes: {[tuple(o.shape) for o in encoder.outputs]}"
            )
        augmenters = inputs.augmenter_list(augmenters, self.num_views)
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
        if probe_on not in inputs.PROBE_INPUTS:
            raise ValueError(
                f"`probe_on` must be one of {list(inputs.PROBE_INPUTS)}. Received: "
                f"probe_on={probe_on!r}"
            )
        if num_classes is not None and (
            not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(
                "`num_classes` must be an integer >= 2, or None for no linear "
                f"probe. Received: num_classes={num_classes!r}"
            )
        self.encoder = encoder
        # The method's modules are tracked before the augmenters and the probe: the
        # order names their weights in `.keras` files ("layers/functional_1", ...).
        for attribute, layer in (heads or {}).items():
            setattr(self, attribute, layer)
        self.augmenters = augmenters
        self.num_classes = num_classes
        self.l2_weight_decay = float(l2_weight_decay)
        self.probe_batch_norm = bool(probe_batch_norm)
        self.probe_on = probe_on
        self.probe = (
            linear_probe(
                encoder.outputs[0].shape[-1],
                num_classes,
                use_bn=self.probe_batch_norm,
                synchronized_bn=True,
                name="linear_probe",
            )
            if num_classes
            else None
        )
        self.probe_average = checked_momentum(probe_average)
        self._make_probe_averages()
        self.probe_optimizer = None
        names = self.objective_metrics + (_PROBE_METRICS if num_classes else ())
        self._trackers = {n: keras.metrics.Mean(name=n) for n in names}
        # The encoder and probe arrive built, and so must a method's modules.
        self.built = True

    # The hook ----------------------------------------------------------------

    def compute_objective(self, views, h, training=False):
        """The method's objective and logged values from the views and their h.

        Args:
            views: list of `num_views` float image batches in [0, 1].
            h: list of their encodings, `(batch, features)` each.
            training: whether the step trains (batch norm, dropout).

        Returns:
            A dict with the keys of `objective_metrics` in order, `"loss"` first,
            each value this replica's float32 share of the global value.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `compute_objective(views, h, "
            "training)`, the method's objective."
        )

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
        jit_compile="auto",
    ):
        """Configures the model for pretraining.

        Args:
            optimizer: optimizer of the encoder and the method's modules (and of the
                linear probe when `probe_optimizer` is None, as SimCLR's reference
                does), e.g. `keras_simclr.optimizers.LARS`.
            probe_optimizer: optional separate optimizer for the linear probe. Without
                it the probe shares `optimizer`; a `LARS` optimizer then steps it
                with plain momentum (no weight decay, no trust ratio).
            run_eagerly: run the steps eagerly (debugging).
            steps_per_execution: steps per `tf.function` (or `jax.jit`) call.
            jit_compile: compile the step with XLA, or `"auto"` (the default):
                off on TensorFlow, where XLA made the step slower on CPU (TPUs
                compile with XLA regardless), on under JAX, whose steps run op by
                op without it.
        """
        self._jit_compile_argument = jit_compile
        if jit_compile == "auto":
            jit_compile = keras.backend.backend() == "jax"
        super().compile(
            optimizer=optimizer,
            run_eagerly=run_eagerly,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
        )
        if probe_optimizer is not None and self.probe is None:
            raise ValueError(
                "`probe_optimizer` was given but the model has no linear probe; "
                f"construct {type(self).__name__} with `num_classes=...` to train one."
            )
        self.probe_optimizer = (
            keras.optimizers.get(probe_optimizer) if probe_optimizer else None
        )

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return keras.saving.serialize_keras_object(
            dict(
                optimizer=self.optimizer,
                probe_optimizer=self.probe_optimizer,
                run_eagerly=self.run_eagerly,
                steps_per_execution=self.steps_per_execution,
                jit_compile=getattr(self, "_jit_compile_argument", self.jit_compile),
            )
        )

    def compile_from_config(self, config):
        # Reads the configs of this class and of Keras' own `get_compile_config`
        # (models saved before the base class), which has more keys.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(
            optimizer=config.get("optimizer", "sgd"),
            probe_optimizer=config.get("probe_optimizer"),
            run_eagerly=config.get("run_eagerly", False),
            steps_per_execution=config.get("steps_per_execution", 1),
            jit_compile=config.get("jit_compile", "auto"),
        )
        self.build_optimizers()

    @property
    def metrics(self):
        return list(self._trackers.values())

    def build_optimizers(self):
        """Creates the optimizers' variables under the model's strategy scope.

        Needed before restoring a `tf.train.Checkpoint` of the optimizers; `fit()`
        and loading a `.keras` file call it. On JAX the variables take the layout
        of the `keras.distribution` set, if any.
        """
        with distribute.strategy_scope(self):
            trained = self._trained_variables()
            if self.probe_optimizer is None:
                if not self.optimizer.built:
                    if self.probe is not None and isinstance(
                        self.optimizer, optimizers.LARS
                    ):
                        self.optimizer.exclude_from_layer_adaptation_and_decay(
                            self._probe_variables()
                        )
                    self.optimizer.build(trained + self._probe_variables())
            else:
                if not self.optimizer.built:
                    self.optimizer.build(trained)
                if not self.probe_optimizer.built:
                    self.probe_optimizer.build(self._probe_variables())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # No public hook replaces this private one of Keras' TensorFlow trainer.
        # Keras' version builds the model from one input batch reduced with
        # strategy.reduce("MEAN"), which fails under MultiWorkerMirroredStrategy
        # (keras-team/keras#20585). Every layer here is built at construction, so
        # only the optimizers' slots remain to be created, under the strategy scope.
        self.build_optimizers()

    def _symbolic_build(self, iterator=None, data_batch=None):
        # The JAX trainer's counterpart of `_maybe_symbolic_build`: Keras would build
        # the optimizer on every trainable variable, the probe's included, which a
        # separate probe optimizer steps instead.
        self.build_optimizers()
        super()._symbolic_build(iterator=iterator, data_batch=data_batch)

    # Training ----------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        replicas = distribute.num_batch_shards(self)
        if replicas > 1 and inputs.is_array_data(x):
            # Keras' array adapter ends an epoch with a partial batch, which cannot
            # be split evenly over the replicas; drop it instead.
            x, y, batch_size = inputs.arrays_to_dataset(
                x, y, batch_size, kwargs.get("shuffle", True), replicas
            ), None, None
        inputs.check_global_batch(x, batch_size, replicas, static=distribute.is_tpu(self))
        if inputs.is_tf_dataset(x):
            # Keras ignores `shuffle` for a tf.data.Dataset (`pretraining_dataset`
            # shuffles, seeded) and warns at every fit() called with its default.
            kwargs.setdefault("shuffle", False)
        return super().fit(x, y, batch_size=batch_size, **kwargs)

    def train_step(self, *args):
        """One training step: `train_step(data)` on TensorFlow, `(state, data)` on JAX.

        On TensorFlow a `tf.GradientTape` step that updates the variables; on JAX
        the stateless step Keras' JAX trainer calls, which returns the logs and the
        new state `(trainable, non_trainable, optimizer, metrics)` values.
        """
        if keras.backend.backend() == "jax":
            return self._stateless_train_step(*args)
        (data,) = args
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        labels = self._labels(y)
        x, probe_images = self._probe_images(x, labels)
        views = self._views(x, training=True)
        trained_variables = self._trained_variables()
        probe_variables = self._probe_variables()
        with _tf().GradientTape() as tape:
            total, shares = self._training_objective(views, labels, probe_images)
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, trained_variables + probe_variables)
        if self.probe_optimizer is None:
            self.optimizer.apply_gradients(
                zip(gradients, trained_variables + probe_variables)
            )
        else:
            split = len(trained_variables)
            self.optimizer.apply_gradients(zip(gradients[:split], trained_variables))
            self.probe_optimizer.apply_gradients(
                zip(gradients[split:], probe_variables)
            )
        self._update_probe_averages()
        return self._log(shares)

    def _training_objective(self, views, labels, probe_images=None):
        """The training objective (a float32 scalar) and the shares to log."""
        h = self._encode(views, training=True)
        objective = self._objective(views, h, training=True)
        total = objective["loss"] + self._regularization_share()
        shares = list(objective.values())
        if labels is not None:
            if probe_images is None:
                probe_h, copies = ops.concatenate(h, axis=0), len(h)
            else:
                probe_h, copies = self.encoder(probe_images, training=False), 1
            probe_loss, probe_accuracy = self._probe_shares(
                probe_h, labels, training=True, copies=copies
            )
            total = total + probe_loss
            shares += [probe_loss, probe_accuracy]
        return total, shares

    def test_step(self, *args):
        """One evaluation step: `test_step(data)` on TensorFlow, `(state, data)` on JAX."""
        if keras.backend.backend() != "jax":
            (data,) = args
            values, names, count = self._evaluation_shares(data)
            return self._log(values, names, weight=count, reduced=True)
        (trainable, non_trainable, metrics_values), data = args
        mapping = list(zip(self.trainable_variables, trainable))
        mapping += list(zip(self.non_trainable_variables, non_trainable))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            values, names, count = self._evaluation_shares(data)
        non_trainable = current_values(scope, self.non_trainable_variables, non_trainable)
        logs, metrics_values = self._stateless_log(
            metrics_values, values, names, weight=count, reduced=True
        )
        return logs, (trainable, non_trainable, metrics_values)

    def _evaluation_shares(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x, images = inputs.split_probe_images(x)
        labels = self._labels(y)
        shares = []
        names = []
        if isinstance(x, (tuple, list)) or self.augmenters:
            views = self._views(x, training=True)
            objective = self._objective(
                views, self._encode(views, training=False), training=False
            )
            shares += list(objective.values())
            names += list(objective)
        probe_sums = []
        if labels is not None:
            if images is None:
                images = x[0] if isinstance(x, (tuple, list)) else x
            images = self._checked_images(images, "validation images")
            h = self.encoder(images, training=False)
            probe_sums = self._probe_sums(h, labels)
            names += list(_PROBE_METRICS)
        if not shares and not probe_sums:
            raise ValueError(
                "Nothing to evaluate: give labels (with `num_classes` set) for the "
                "linear probe, the views `(view_1, view_2, ...)`, or augmenters for "
                "the method's objective."
            )
        # An evaluation's last batch may be smaller, and split unevenly over the
        # replicas: the probe's metrics are global sums over the global count, and
        # every batch weighs by that count, so the epoch's value is the exact mean
        # over the examples.
        count = ops.cast(ops.shape(images if labels is not None else views[0])[0], "float32")
        totals = distribute.sum_across_replicas(
            ops.stack([ops.cast(s, "float32") for s in shares + probe_sums] + [count])
        )
        count = totals[-1]
        values = [totals[i] for i in range(len(shares))]
        values += [totals[len(shares) + i] / count for i in range(len(probe_sums))]
        return values, names, count


    # Step pieces -------------------------------------------------------------

    def _trained_variables(self):
        """The variables the objective trains (all but the probe's), in model order."""
        probe = {id(v) for v in self._probe_variables()}
        return [v for v in self.trainable_variables if id(v) not in probe]

    def _probe_variables(self):
        return self.probe.trainable_variables if self.probe is not None else []

    def _encode(self, views, training):
        """h of every view, from one encoder pass over the concatenated views."""
        h = self.encoder(ops.concatenate(views, axis=0), training=training)
        return ops.split(h, len(views), axis=0)

    def _objective(self, views, h, training):
        objective = self.compute_objective(views, h, training=training)
        if tuple(objective) != tuple(self.objective_metrics):
            raise ValueError(
                f"{type(self).__name__}.compute_objective must return the keys of "
                f"`objective_metrics`, {list(self.objective_metrics)}, in order. "
                f"Received: {list(objective)}"
            )
        return objective

    def _probe_images(self, x, labels):
        """The views' input, and the clean images the probe trains on (or `None`)."""
        x, images = inputs.probe_images(x, labels is not None, self.probe_on)
        if images is not None:
            images = self._checked_images(images, "probe images")
        return x, images

    def _views(self, x, training):
        if isinstance(x, (tuple, list)):
            if len(x) != self.num_views:
                raise ValueError(
                    f"Pre-made views must be a tuple of {self.num_views} batches "
                    f"(view_1, view_2, ...). Received {len(x)} tensors."
                )
            views = [
                self._checked_images(view, f"view_{i + 1}") for i, view in enumerate(x)
            ]
            if any(view.shape[1:] != views[0].shape[1:] for view in views):
                raise ValueError(
                    "The views must have the same shape. Received "
                    f"{[tuple(view.shape) for view in views]}."
                )
            return views
        if not self.augmenters:
            raise ValueError(
                f"{type(self).__name__} received a batch of images but has no "
                "`augmenter` to make the views. Pass augmenters (e.g. "
                "`augmenter=keras_simclr.augment.SimCLRAugment(...)`) to the model, "
                "or give the views `(view_1, view_2)` from the input pipeline "
                "(keras_simclr.data.pretraining_dataset(augment=...))."
            )
        _check_rank(x, "images")
        return [
            self._checked_images(
                self.augmenters[i % len(self.augmenters)](x, training=training),
                "augmented view",
            )
            for i in range(self.num_views)
        ]

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
            tf = _tf()
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
        return inputs.probe_labels(y, self.probe is not None, type(self).__name__)

    def _probe_shares(self, h, labels, training, copies=1):
        """The probe's loss and accuracy on h: `copies` batches of the labelled images."""
        labels = ops.concatenate([labels] * copies, axis=0)
        logits = ops.cast(self.probe(ops.stop_gradient(h), training=training), "float32")
        per_example = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )
        correct = ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels)
        return replica_share(per_example), replica_share(correct)

    def _probe_sums(self, h, labels):
        """This replica's sums of the probe's loss and of its correct predictions."""
        logits = self.probe_logits(h)
        per_example = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )
        correct = ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels)
        return [ops.sum(per_example), ops.sum(ops.cast(correct, "float32"))]

    def _regularization_share(self):
        terms = [ops.cast(ops.sum(self.losses), "float32")] if self.losses else []
        if self.l2_weight_decay:
            decayed = [
                ops.sum(ops.square(ops.cast(v, "float32")))
                for v in self._trained_variables() + self._probe_variables()
                if not optimizers.is_batch_norm_parameter(v)
            ]
            terms.append(self.l2_weight_decay * ops.sum(ops.stack(decayed)) / 2)
        if not terms:
            return 0.0
        # Regularisers are global terms; each replica contributes 1/R of them so
        # that the gradients summed over replicas count them once.
        return ops.sum(ops.stack(terms)) / distribute.num_replicas()

    def _log(self, shares, names=None, weight=None, reduced=False):
        names = names or list(self._trackers)[: len(shares)]
        totals = shares if reduced else distribute.sum_across_replicas(
            ops.stack([ops.cast(s, "float32") for s in shares])
        )
        for i, name in enumerate(names):
            self._trackers[name].update_state(totals[i], sample_weight=weight)
        logs = {name: self._trackers[name].result() for name in names}
        if distribute.uses_tf_distribute() and _spans_workers(self.distribute_strategy):
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
            augmenters=(
                [keras.saving.serialize_keras_object(a) for a in self.augmenters]
                or None
            ),
            num_classes=self.num_classes,
            l2_weight_decay=self.l2_weight_decay,
            probe_batch_norm=self.probe_batch_norm,
            probe_on=self.probe_on,
            probe_average=self.probe_average,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Models saved before the option existed have the reference's probe.
        config.setdefault("probe_batch_norm", False)
        for key in cls.serialized_arguments + ("augmenters",):
            if config.get(key) is not None:
                if not distribute.uses_tf_distribute():
                    config[key] = _without_synchronized_batch_norm(config[key])
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _tf():
    # Imported on first use: the JAX backend runs without TensorFlow.
    import tensorflow as tf

    return tf


def _without_synchronized_batch_norm(config):
    """A layer config whose batch-norm layers have `synchronized=False`.

    Models trained on several TensorFlow replicas synchronise their batch norm;
    Keras' other backends refuse the flag, and under JAX the statistics cover the
    global batch anyway (`distribute.synchronized_batch_norm`), so the config is
    loaded without it.
    """
    if isinstance(config, dict):
        config = {key: _without_synchronized_batch_norm(value) for key, value in config.items()}
        if config.get("class_name") == "BatchNormalization" and isinstance(
            config.get("config"), dict
        ):
            config["config"] = dict(config["config"], synchronized=False)
        return config
    if isinstance(config, list):
        return [_without_synchronized_batch_norm(value) for value in config]
    return config


def _spans_workers(strategy):
    if not isinstance(strategy, _tf().distribute.MultiWorkerMirroredStrategy):
        return False
    return strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def _check_rank(images, what):
    if len(images.shape) != 4:
        raise ValueError(
            f"Expected {what} as a 4-D batch (batch, height, width, channels). "
            f"Received shape {tuple(images.shape)}."
        )


def _to_float_images(images):
    return to_unit_float(ops.convert_to_tensor(images))


