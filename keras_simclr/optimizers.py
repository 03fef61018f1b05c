"""LARS and the learning-rate schedule SimCLR pretrains with.

SimCLR (Chen et al., ICML 2020, Section 2.2) trains with large batches, which it
stabilises with LARS (You et al., 2017), a learning rate scaled with the batch size
(Section 2.3 "Default setting" and Appendix B.1), a linear warm-up and a cosine decay
without restarts. Keras 3 ships none of LARS, and tensorflow-addons does not import
under Keras 3, so this module provides:

- `LARS`: a `keras.optimizers.Optimizer` with the reference's "classic momentum"
  rule and its exclusions (no weight decay or trust ratio for batch-norm parameters
  and biases).
- `WarmupCosineDecay`: linear warm-up from 0, then cosine decay.
- `scaled_learning_rate`: the paper's linear and square-root scaling rules.
"""

import math
import numbers

import keras
from keras import ops

_BATCH_NORM_PATTERN = "batch_normalization"
# Keras names the scale and offset of every normalization layer `gamma` and `beta`
# whatever the layer is called, so these names identify batch-norm parameters of
# layers named e.g. `conv2_block1_0_bn`.
_NORMALIZATION_PARAMETER_NAMES = ("gamma", "beta")
_SCALING_RULES = ("linear", "sqrt")


def _is_real_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_pattern_tuple(patterns, argument):
    if patterns is None:
        return ()
    if isinstance(patterns, str):
        return (patterns,)
    patterns = tuple(patterns)
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(
                f"`{argument}` must be a sequence of variable-path substrings. "
                f"Received: {argument}={patterns!r}"
            )
    return patterns


def _variable_path(variable):
    # Keras variables carry `path` ("dense/kernel"); plain `tf.Variable`s only a
    # `name` ("dense/kernel:0").
    path = getattr(variable, "path", None) or variable.name
    return path.split(":")[0]


def _matches(variable, patterns):
    """Whether a variable is selected by a list of path substrings.

    The pattern `"batch_normalization"` also selects every one-dimensional
    variable named `gamma` or `beta`, i.e. the parameters of normalization layers
    whose name does not contain "batch_normalization".
    """
    path = _variable_path(variable)
    if any(pattern in path for pattern in patterns):
        return True
    return (
        _BATCH_NORM_PATTERN in patterns
        and path.split("/")[-1] in _NORMALIZATION_PARAMETER_NAMES
        and len(variable.shape) == 1
    )


def is_batch_norm_parameter(variable):
    """Whether `variable` is a batch-norm parameter by the rule LARS excludes them.

    Its path contains "batch_normalization", or it is a one-dimensional `gamma`
    or `beta` (normalization layers with other names).
    """
    return _matches(variable, (_BATCH_NORM_PATTERN,))


def _l2_norm(x):
    # Norms in float32 even for float16/bfloat16 variables: a sum of squares
    # overflows float16 long before the update itself would.
    x = ops.cast(x, "float32")
    return ops.sqrt(ops.sum(ops.square(x)))


@keras.saving.register_keras_serializable(package="keras_simclr")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling (LARS) with SimCLR's exclusions.

    SimCLR trains with batches of up to 8192 images and uses LARS
    (You et al., 2017) "to stabilize the training" (Chen et al., 2020,
    Section 2.2), with momentum 0.9, trust coefficient 0.001 and weight decay
    1e-6 (Section 2.3, "Default setting"). The update is the reference
    implementation's "classic momentum" rule; for every variable `w` with
    gradient `g`:

    ```python
    g = g + weight_decay * w                  # unless excluded from decay
    trust = eeta * norm(w) / norm(g)          # 1 if either norm is 0, and 1
                                              # for variables excluded from
                                              # layer adaptation
    v = momentum * v + learning_rate * trust * g
    w = w - v                                 # nesterov=False
    w = w - (momentum * v + learning_rate * trust * g)   # nesterov=True
    ```

    The weight decay is part of the rule: it enters the gradient before the
    trust ratio is computed. Keras' own decoupled weight decay (which the base
    optimizer would apply before `update_step`) is therefore never applied;
    `weight_decay` here always means the LARS decay above.

    Exclusions. Batch-norm parameters and biases get neither weight decay nor
    the trust ratio, as in the reference. A variable is excluded from weight
    decay when:

    - one of the `exclude_from_weight_decay` strings is a substring of its path
      (e.g. `"bias"` matches `"dense/bias"`); the string
      `"batch_normalization"` additionally matches every one-dimensional
      variable named `gamma` or `beta`, so batch-norm layers with custom names
      (`"conv2_block1_0_bn/gamma"`) are excluded too (so are the parameters of
      `LayerNormalization` and `GroupNormalization`, which share those names);
    - or it was excluded with Keras' own
      `optimizer.exclude_from_weight_decay(var_list=..., var_names=...)`
      (called before the optimizer is built; `var_names` are matched against
      the variable's name, as Keras does).

    A variable is excluded from layer adaptation (trust ratio 1) when it
    matches `exclude_from_layer_adaptation` by the same path rule; when that
    argument is `None`, exactly the variables excluded from weight decay are.
    Variables passed to `exclude_from_layer_adaptation_and_decay()` (SimCLR's
    online linear probe) are excluded from both.

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` (for SimCLR, a
            `WarmupCosineDecay`), or a callable that takes no arguments and
            returns the learning rate.
        momentum: Float in [0, 1). Defaults to `0.9`.
        weight_decay: Float >= 0, the L2 coefficient added to the gradient
            before the trust ratio; `0` or `None` disables it. Defaults to
            `1e-6` (ImageNet); the reference's CIFAR-10 command uses `1e-4`.
        eeta: Float > 0, the trust coefficient. Defaults to `0.001`.
        nesterov: Whether to use the Nesterov form of the momentum update.
            Defaults to `False`.
        exclude_from_weight_decay: Sequence of variable-path substrings whose
            variables get no weight decay (see "Exclusions"). Defaults to
            `("batch_normalization", "bias")`.
        exclude_from_layer_adaptation: Sequence of variable-path substrings
            whose variables get no trust ratio, or `None` to use the weight
            decay exclusions. Defaults to `None`.
        **kwargs: The base optimizer's keyword arguments (`name`, `clipnorm`,
            `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`).

    Example:

    ```python
    batch_size, steps_per_epoch = 512, 97
    schedule = keras_simclr.optimizers.WarmupCosineDecay(
        keras_simclr.optimizers.scaled_learning_rate(0.3, batch_size, "linear"),
        warmup_steps=10 * steps_per_epoch,
        total_steps=100 * steps_per_epoch,
    )
    optimizer = keras_simclr.optimizers.LARS(
        learning_rate=schedule, momentum=0.9, weight_decay=1e-6
    )
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model.compile(optimizer=optimizer, loss="mse")
    ```
    """

    def __init__(
        self,
        learning_rate,
        momentum=0.9,
        weight_decay=1e-6,
        eeta=0.001,
        nesterov=False,
        exclude_from_weight_decay=(_BATCH_NORM_PATTERN, "bias"),
        exclude_from_layer_adaptation=None,
        **kwargs,
    ):
        if _is_real_number(learning_rate):
            if learning_rate < 0:
                raise ValueError(
                    "`learning_rate` must be >= 0. "
                    f"Received: learning_rate={learning_rate}"
                )
            # The base optimizer accepts only Python floats, not ints.
            learning_rate = float(learning_rate)
        if not _is_real_number(momentum) or not 0 <= momentum < 1:
            raise ValueError(
                "`momentum` must be a float in [0, 1). "
                f"Received: momentum={momentum}"
            )
        if weight_decay is None:
            weight_decay = 0.0
        if not _is_real_number(weight_decay) or weight_decay < 0:
            raise ValueError(
                "`weight_decay` must be a float >= 0 (0 disables it). "
                f"Received: weight_decay={weight_decay}"
            )
        if not _is_real_number(eeta) or eeta <= 0:
            raise ValueError(
                "`eeta` (the LARS trust coefficient) must be > 0; SimCLR uses "
                f"0.001. Received: eeta={eeta}"
            )
        if not isinstance(nesterov, bool):
            raise ValueError(
                f"`nesterov` must be a bool. Received: nesterov={nesterov!r}"
            )
        weight_decay_patterns = _as_pattern_tuple(
            exclude_from_weight_decay, "exclude_from_weight_decay"
        )
        if exclude_from_layer_adaptation is not None:
            exclude_from_layer_adaptation = _as_pattern_tuple(
                exclude_from_layer_adaptation, "exclude_from_layer_adaptation"
            )
        # `weight_decay` is deliberately not passed on: the base class would
        # apply it as decoupled decay, on top of the LARS decay in `update_step`.
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.eeta = float(eeta)
        self.nesterov = nesterov
        # Not `self.exclude_from_weight_decay`: that name is Keras' method.
        self._weight_decay_patterns = weight_decay_patterns
        self._layer_adaptation_patterns = exclude_from_layer_adaptation
        self._plain_momentum_keys = set()

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Excludes variables from weight decay (and, by default, layer adaptation).

        Keras' method, kept with its semantics: variables in `var_list`, and
        variables whose name matches one of `var_names`, get no weight decay.
        When `exclude_from_layer_adaptation` is `None` they also get no trust
        ratio. Exclusions are resolved when the optimizer is built, so this
        must be called before.

        Args:
            var_list: A list of variables to exclude.
            var_names: A list of strings; a variable whose name contains one of
                them is excluded.
        """
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` must be called before the "
                f"optimizer is built; optimizer '{self.name}' already is. "
                "Create a new optimizer, call this method, then train."
            )
        super().exclude_from_weight_decay(var_list=var_list, var_names=var_names)

    def exclude_from_layer_adaptation_and_decay(self, var_list):
        """Lets variables step with plain momentum at the full learning rate.

        The variables get neither weight decay nor the trust ratio, whatever the
        patterns say: the reference treats its linear probe (`head_supervised`)
        this way, so that the probe learns at the learning rate instead of
        `eeta` times its weights' norm (`keras_simclr.models.SimCLR` calls this
        for its online probe). Adds to earlier calls; must be called before the
        optimizer is built.

        Args:
            var_list: A list of variables.
        """
        if self.built:
            raise ValueError(
                "`exclude_from_layer_adaptation_and_decay()` must be called before "
                f"the optimizer is built; optimizer '{self.name}' already is. "
                "Create a new optimizer, call this method, then train."
            )
        self._plain_momentum_keys.update(self._var_key(v) for v in var_list)

    def build(self, var_list):
        """Creates the momentum slots and resolves the exclusions.

        On the TensorFlow backend `update_step` receives the backend variable,
        which has no Keras path, so the per-variable decisions are taken here
        and looked up by variable index.

        Args:
            var_list: The model variables this optimizer will update.
        """
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")
        use_weight_decay = tuple(
            self.weight_decay > 0
            and self._use_weight_decay(variable)
            and not _matches(variable, self._weight_decay_patterns)
            for variable in var_list
        )
        if self._layer_adaptation_patterns is None:
            use_layer_adaptation = tuple(
                self._use_weight_decay(variable)
                and not _matches(variable, self._weight_decay_patterns)
                for variable in var_list
            )
        else:
            use_layer_adaptation = tuple(
                not _matches(variable, self._layer_adaptation_patterns)
                for variable in var_list
            )
        plain = tuple(self._var_key(v) in self._plain_momentum_keys for v in var_list)
        self._use_lars_weight_decay = tuple(
            use and not p for use, p in zip(use_weight_decay, plain)
        )
        self._use_layer_adaptation = tuple(
            use and not p for use, p in zip(use_layer_adaptation, plain)
        )

    def _apply_weight_decay(self, variables):
        # The decay is applied inside `update_step`, before the trust ratio, as
        # in the reference; the base class' decoupled decay must not run too.
        return

    def update_step(self, gradient, variable, learning_rate):
        """Applies one LARS step to `variable`."""
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        momentum = ops.cast(self.momentum, dtype)

        if self._use_lars_weight_decay[index]:
            weight_decay = ops.cast(self.weight_decay, dtype)
            gradient = ops.add(gradient, ops.multiply(weight_decay, variable))
        if self._use_layer_adaptation[index]:
            learning_rate = ops.multiply(
                learning_rate,
                ops.cast(self._trust_ratio(variable, gradient), dtype),
            )

        scaled_gradient = ops.multiply(learning_rate, gradient)
        velocity = self._momentums[index]
        new_velocity = ops.add(ops.multiply(momentum, velocity), scaled_gradient)
        self.assign(velocity, new_velocity)
        if self.nesterov:
            update = ops.add(ops.multiply(momentum, new_velocity), scaled_gradient)
        else:
            update = new_velocity
        self.assign_sub(variable, update)

    def _trust_ratio(self, variable, gradient):
        weight_norm = _l2_norm(variable)
        gradient_norm = _l2_norm(gradient)
        both_positive = ops.logical_and(
            ops.greater(weight_norm, 0.0), ops.greater(gradient_norm, 0.0)
        )
        # The safe denominator keeps the unused branch of `where` finite.
        safe_gradient_norm = ops.where(both_positive, gradient_norm, 1.0)
        return ops.where(
            both_positive, self.eeta * weight_norm / safe_gradient_norm, 1.0
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.weight_decay,
                "eeta": self.eeta,
                "nesterov": self.nesterov,
                "exclude_from_weight_decay": list(self._weight_decay_patterns),
                "exclude_from_layer_adaptation": (
                    None
                    if self._layer_adaptation_patterns is None
                    else list(self._layer_adaptation_patterns)
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_simclr")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0, then cosine decay without restarts.

    SimCLR warms the learning rate up linearly for the first 10 epochs and then
    decays it "with the cosine decay schedule without restarts" (Chen et al.,
    2020, Section 2.3, "Default setting"). As in the reference implementation,
    `total_steps` counts the warm-up steps too, and the value at step `t` is:

    ```python
    if t < warmup_steps:
        lr = base_learning_rate * t / warmup_steps
    else:
        progress = min(t - warmup_steps, decay_steps) / decay_steps
        lr = base_learning_rate * (
            alpha + (1 - alpha) * 0.5 * (1 + cos(pi * progress))
        )
    # with decay_steps = total_steps - warmup_steps; after `total_steps` the
    # rate stays at `alpha * base_learning_rate`.
    ```

    Keras' `CosineDecay(0.0, total_steps - warmup_steps, alpha,
    warmup_target=base_learning_rate, warmup_steps=warmup_steps)` computes the
    same values when `warmup_steps < total_steps`; this class takes the
    reference's arguments and also accepts `warmup_steps == total_steps`.

    Args:
        base_learning_rate: Float >= 0, the peak rate reached at the end of the
            warm-up, usually `scaled_learning_rate(...)`.
        warmup_steps: Int >= 0, the number of warm-up steps (0 starts the
            decay immediately).
        total_steps: Int > 0 and >= `warmup_steps`, the number of training
            steps including the warm-up.
        alpha: Float in [0, 1], the final rate as a fraction of
            `base_learning_rate`. Defaults to `0.0`.

    Returns:
        Called with the optimizer's step, a float32 scalar tensor.

    Example:

    ```python
    steps_per_epoch = 50_000 // 512
    schedule = keras_simclr.optimizers.WarmupCosineDecay(
        keras_simclr.optimizers.scaled_learning_rate(0.3, 512),
        warmup_steps=10 * steps_per_epoch,
        total_steps=100 * steps_per_epoch,
    )
    float(schedule(0))  # 0.0
    float(schedule(10 * steps_per_epoch))  # 0.6, the peak
    ```
    """

    def __init__(self, base_learning_rate, warmup_steps, total_steps, alpha=0.0):
        if not _is_real_number(base_learning_rate) or base_learning_rate < 0:
            raise ValueError(
                "`base_learning_rate` must be a float >= 0. "
                f"Received: base_learning_rate={base_learning_rate}"
            )
        if not isinstance(warmup_steps, numbers.Integral) or warmup_steps < 0:
            raise ValueError(
                "`warmup_steps` must be an int >= 0. "
                f"Received: warmup_steps={warmup_steps}"
            )
        if not isinstance(total_steps, numbers.Integral) or total_steps <= 0:
            raise ValueError(
                "`total_steps` must be an int > 0. "
                f"Received: total_steps={total_steps}"
            )
        if warmup_steps > total_steps:
            raise ValueError(
                "`warmup_steps` must be <= `total_steps` (the total includes "
                f"the warm-up). Received: warmup_steps={warmup_steps}, "
                f"total_steps={total_steps}. For short runs, use "
                "warmup_steps=min(warmup_steps, total_steps)."
            )
        if not _is_real_number(alpha) or not 0 <= alpha <= 1:
            raise ValueError(
                f"`alpha` must be a float in [0, 1]. Received: alpha={alpha}"
            )
        super().__init__()
        self.base_learning_rate = float(base_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.alpha = float(alpha)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        base = ops.cast(self.base_learning_rate, "float32")
        decay_steps = self.total_steps - self.warmup_steps
        if decay_steps > 0:
            progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        else:
            progress = ops.ones_like(step)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decayed = base * (self.alpha + (1.0 - self.alpha) * cosine)
        if self.warmup_steps == 0:
            return decayed
        warmup = base * step / self.warmup_steps
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "alpha": self.alpha,
        }


def scaled_learning_rate(base_learning_rate, batch_size, scaling="linear"):
    """Scales a base learning rate with the batch size, as SimCLR does.

    SimCLR uses `0.3 * batch_size / 256` (linear scaling, Section 2.3, "Default
    setting") and reports that `0.075 * sqrt(batch_size)` (square-root scaling)
    works better for small batches and long training (Appendix B.1).

    Args:
        base_learning_rate: Float >= 0; 0.3 for linear scaling, 0.075 for
            square-root scaling in the paper.
        batch_size: Int > 0, the global batch size (all replicas together).
        scaling: `"linear"` (`base * batch_size / 256`) or `"sqrt"`
            (`base * sqrt(batch_size)`). Defaults to `"linear"`.

    Returns:
        The learning rate, a Python float.

    Example:

    ```python
    keras_simclr.optimizers.scaled_learning_rate(0.3, 4096)            # 4.8
    keras_simclr.optimizers.scaled_learning_rate(0.075, 4096, "sqrt")  # 4.8
    ```
    """
    if not _is_real_number(base_learning_rate) or base_learning_rate < 0:
        raise ValueError(
            "`base_learning_rate` must be a float >= 0. "
            f"Received: base_learning_rate={base_learning_rate}"
        )
    if (
        not isinstance(batch_size, numbers.Integral)
        or isinstance(batch_size, bool)
        or batch_size <= 0
    ):
        raise ValueError(
            "`batch_size` must be an int > 0 (the global batch size). "
            f"Received: batch_size={batch_size}"
        )
    if scaling == "linear":
        return float(base_learning_rate) * batch_size / 256
    if scaling == "sqrt":
        return float(base_learning_rate) * math.sqrt(batch_size)
    raise ValueError(
        f"`scaling` must be one of {_SCALING_RULES}. Received: scaling={scaling!r}"
    )
