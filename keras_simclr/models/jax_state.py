"""The JAX trainer's state for a model with two optimizers.

Keras' JAX trainer runs a stateless step: it passes the values of the trainable,
non-trainable, optimizer and metric variables in and takes the new values out.
`SelfSupervisedModel` trains its encoder and heads with one optimizer and its online
probe with another, and its objective reads more than `call()` runs, so its JAX step
maps every variable to its value with `keras.StatelessScope` and steps both
optimizers with `stateless_apply`; the probe optimizer's variables ride in the
optimizer state.
"""

import keras


class JaxState:
    """The stateless JAX step and the optimizer state of `SelfSupervisedModel`."""

    # The JAX trainer's state ---------------------------------------------------
    # Keras' JAX trainer carries `self.optimizer.variables` as the optimizer state
    # and has no hook for a second optimizer; these three private methods append
    # the probe optimizer's variables to that state, and read them back.

    def _stateless_train_step(self, state, data):
        """The JAX step: values in, gradients by `jax.value_and_grad`, values out.

        The objective needs the encoder, the method's heads, the augmenters and the
        probe, more than `call()` (the encoder) that `stateless_call` runs, so the
        variables are mapped to the state's values with `keras.StatelessScope`, as
        `stateless_call` itself does. The optimizers step with `stateless_apply`.
        """
        import jax

        trainable, non_trainable, optimizer_values, metrics_values = state
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        split = len(self.optimizer.variables)
        probe_optimizer_values = optimizer_values[split:]
        optimizer_values = optimizer_values[:split]

        def scaled_objective(trainable, non_trainable):
            mapping = list(zip(self.trainable_variables, trainable))
            mapping += list(zip(self.non_trainable_variables, non_trainable))
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
                labels = self._labels(y)
                inputs, probe_images = self._probe_images(x, labels)
                views = self._views(inputs, training=True)
                total, shares = self._training_objective(views, labels, probe_images)
            with keras.StatelessScope(
                state_mapping=list(zip(self.optimizer.variables, optimizer_values))
            ):
                scaled = self.optimizer.scale_loss(total)
            non_trainable = current_values(scope, self.non_trainable_variables, non_trainable)
            return scaled, (shares, non_trainable)

        (_, (shares, non_trainable)), gradients = jax.value_and_grad(
            scaled_objective, has_aux=True
        )(trainable, non_trainable)

        # The optimizers were built on (trained + probe) variables, in that order.
        probe_ids = {id(v) for v in self._probe_variables()}
        trained_index = [
            i for i, v in enumerate(self.trainable_variables) if id(v) not in probe_ids
        ]
        probe_index = [
            i for i, v in enumerate(self.trainable_variables) if id(v) in probe_ids
        ]
        trainable = list(trainable)
        if self.probe_optimizer is None:
            index = trained_index + probe_index
            updated, optimizer_values = self.optimizer.stateless_apply(
                optimizer_values, [gradients[i] for i in index], [trainable[i] for i in index]
            )
        else:
            updated, optimizer_values = self.optimizer.stateless_apply(
                optimizer_values,
                [gradients[i] for i in trained_index],
                [trainable[i] for i in trained_index],
            )
            updated_probe, probe_optimizer_values = self.probe_optimizer.stateless_apply(
                probe_optimizer_values,
                [gradients[i] for i in probe_index],
                [trainable[i] for i in probe_index],
            )
            index = trained_index + probe_index
            updated = list(updated) + list(updated_probe)
        for i, value in zip(index, updated):
            trainable[i] = value
        if self._probe_averages:
            non_trainable = list(non_trainable)
            positions = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
            weights = {id(v): i for i, v in enumerate(self.trainable_variables)}
            dense = self._probe_dense()
            average_index = [positions[id(a)] for a in self._probe_averages]
            new = self._averaged(
                [non_trainable[i] for i in average_index],
                [trainable[weights[id(w)]] for w in (dense.kernel, dense.bias)],
            )
            for i, value in zip(average_index, new):
                non_trainable[i] = value

        logs, metrics_values = self._stateless_log(metrics_values, shares)
        state = (
            trainable,
            non_trainable,
            list(optimizer_values) + list(probe_optimizer_values),
            metrics_values,
        )
        return logs, state

    def _stateless_log(self, metrics_values, shares, names=None, **kwargs):
        with keras.StatelessScope(
            state_mapping=list(zip(self.metrics_variables, metrics_values))
        ) as scope:
            logs = self._log(shares, names, **kwargs)
        return logs, current_values(scope, self.metrics_variables, metrics_values)

    def _get_jax_state(
        self,
        trainable_variables=False,
        non_trainable_variables=False,
        optimizer_variables=False,
        metrics_variables=False,
        purge_model_variables=False,
    ):
        state = list(
            super()._get_jax_state(
                trainable_variables=trainable_variables,
                non_trainable_variables=non_trainable_variables,
                optimizer_variables=optimizer_variables,
                metrics_variables=metrics_variables,
                purge_model_variables=purge_model_variables,
            )
        )
        if optimizer_variables and self.probe_optimizer is not None:
            index = int(trainable_variables) + int(non_trainable_variables)
            state[index] = list(state[index]) + [
                v.value for v in self.probe_optimizer.variables
            ]
            if purge_model_variables:
                for v in self.probe_optimizer.variables:
                    v._value = None
        return tuple(state)

    def jax_state_sync(self):
        state = getattr(self, "_jax_state", None)
        probe_values = None
        if state and not self._jax_state_synced and self.probe_optimizer is not None:
            values = state.get("optimizer_variables")
            if values:
                probe_values = values[len(self.optimizer.variables):]
        super().jax_state_sync()
        for variable, value in zip(
            self.probe_optimizer.variables if probe_values else [], probe_values or []
        ):
            variable.assign(value)

    def _get_state_sharding_spec(self):
        trainable, non_trainable, optimizer, metrics = super()._get_state_sharding_spec()
        if self.probe_optimizer is not None:
            optimizer = list(optimizer) + [
                v.value.sharding for v in self.probe_optimizer.variables
            ]
        return trainable, non_trainable, optimizer, metrics


def current_values(scope, variables, values):
    """The values a `StatelessScope` left in `variables`, or `values` if unchanged."""
    current = []
    for variable, value in zip(variables, values):
        new = scope.get_current_value(variable)
        current.append(value if new is None else new)
    return current
