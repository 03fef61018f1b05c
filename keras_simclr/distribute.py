"""The cross-replica pieces SimCLR needs: gather with gradients, sums, strategies.

SimCLR (Chen et al., ICML 2020, Section 2.2 "Training with large batch size")
contrasts every example against the whole global batch: "we aggregate BN mean and
variance over all devices" and the negatives of the NT-Xent loss are the projections
of all replicas. This is the only module of `keras_simclr` that talks to
`tf.distribute`; everything else asks it how many replicas there are, gathers
through it, and stays correct without a strategy, where every function here is the
identity (or returns 0 / 1).

Works in the replica context of `tf.distribute.MirroredStrategy`,
`MultiWorkerMirroredStrategy` and `TPUStrategy` (inside `strategy.run`, i.e. in a
Keras `train_step` under `fit()`), and without any strategy.

On Keras' JAX backend there are no replicas to talk to: the step is one program on
the global batch, which `keras.distribution.DataParallel` shards over the devices,
and XLA inserts the collectives that the global loss, the gathered negatives and
global batch norm need. There every cross-replica function here is the identity
(one "replica"), `data_parallel` sets the distribution up, and TensorFlow is not
imported.
"""

import contextlib

import keras

from keras_simclr import checks

_STRATEGY_NAMES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def _tf():
    # Imported on first use, so that the JAX backend runs without TensorFlow.
    import tensorflow as tf

    return tf


def uses_tf_distribute():
    """Whether Keras' backend is TensorFlow, whose replicas `tf.distribute` runs.

    Returns:
        `True` on the TensorFlow backend; `False` on JAX, where
        `keras.distribution` shards one program over the devices instead.
    """
    return keras.backend.backend() == "tensorflow"


def _replica_context():
    """The replica context when more than one replica runs in sync, else `None`.

    In a cross-replica context (`with strategy.scope():` outside `strategy.run`)
    tensors hold the global batch already, so there is nothing to gather; neither
    is there under JAX, whose step always sees the global batch.
    """
    if not uses_tf_distribute():
        return None
    context = _tf().distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def num_replicas():
    """The number of replicas training in sync; 1 without a strategy.

    The same number in a replica context (inside `strategy.run` / `train_step`) and
    in the cross-replica context (`with strategy.scope():`). With
    `MultiWorkerMirroredStrategy` it counts the replicas of all workers.

    Returns:
        A Python `int`.

    Example:

    >>> keras_simclr.distribute.num_replicas()
    1
    """
    if not uses_tf_distribute():
        return 1
    return int(_tf().distribute.get_strategy().num_replicas_in_sync)


def replica_index():
    """This replica's index among the replicas in sync; 0 without a strategy.

    Returns:
        A scalar int32 tensor (a traced value on TPUs).

    Example:

    >>> int(keras_simclr.distribute.replica_index())
    0
    """
    if not uses_tf_distribute():
        return keras.ops.convert_to_tensor(0, "int32")
    tf = _tf()
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def cross_replica_concat(x):
    """Concatenates `x` of all replicas along axis 0, in replica order.

    SimCLR's negatives are the projections of every replica (Section 2.2). The
    gather is `tf.distribute.ReplicaContext.all_gather`, whose gradient sums the
    gradients all replicas computed for the gathered tensor and hands each replica
    the rows it contributed. So a replica whose loss uses another replica's
    projections sends that gradient back to their owner, where it flows on into the
    owner's network, exactly as if the global batch had gone through one device.

    The replicas may hold different numbers of rows (a partial last batch under
    `MirroredStrategy`); on TPUs all replicas must have the same static shape.

    Args:
        x: a tensor of rank >= 1, or a nested structure of them (gathered in one
            collective).

    Returns:
        The same structure with axis 0 holding the rows of all replicas; `x` itself
        with a single replica, without a strategy, or in a cross-replica context.

    Example:

    ```python
    def step(z):
        z_all = keras_simclr.distribute.cross_replica_concat(z)
        ...

    strategy.run(step, args=(z,))
    ```
    """
    context = _replica_context()
    if context is None:
        return x
    return context.all_gather(x, axis=0)


def replica_offset(local_size):
    """Index of this replica's first row in the output of `cross_replica_concat`.

    `replica_index() * local_size` when every replica holds `local_size` rows; this
    also handles replicas holding different numbers of rows, at the price of one
    gather of one integer per replica.

    Args:
        local_size: the number of rows this replica passes to
            `cross_replica_concat` (an int or a scalar integer tensor).

    Returns:
        A scalar int32 tensor, or the Python int 0 with a single replica.

    Example:

    ```python
    offset = keras_simclr.distribute.replica_offset(ops.shape(z)[0])
    own_rows = ops.arange(n) + offset  # positions of this replica's rows
    ```
    """
    context = _replica_context()
    if context is None:
        return 0
    tf = _tf()
    sizes = context.all_gather(tf.reshape(tf.cast(local_size, tf.int32), [1]), axis=0)
    index = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return tf.reduce_sum(sizes[:index])


def sum_across_replicas(x):
    """Sums `x` over the replicas in sync; the identity otherwise.

    Use it to log a global value from a replica's share, e.g. the NT-Xent loss that
    `keras_simclr.losses.nt_xent` returns as each replica's part of the global mean:
    Keras reduces the logs of the replicas with a mean, so it must receive the
    global value from every replica.

    Args:
        x: a tensor, or a nested structure of tensors.

    Returns:
        The all-reduced sum in a replica context with more than one replica, `x`
        itself otherwise.

    Example:

    ```python
    result = keras_simclr.losses.nt_xent(z_a, z_b)
    self.loss_tracker.update_state(
        keras_simclr.distribute.sum_across_replicas(result.loss)
    )
    ```
    """
    context = _replica_context()
    if context is None:
        return x
    return context.all_reduce(_tf().distribute.ReduceOp.SUM, x)


def per_replica_batch_size(global_batch_size, num_replicas):
    """The batch size of each replica, checking that the global batch divides.

    SimCLR's batch size (Section 3, batch 256 to 8192) is the global one: the
    number of examples whose projections are contrasted. Every replica must hold
    the same share, so the global batch must be a multiple of the replica count.

    Args:
        global_batch_size: positive int, the number of examples per step over all
            replicas.
        num_replicas: positive int, e.g. `num_replicas()` or
            `strategy.num_replicas_in_sync`.

    Returns:
        `global_batch_size // num_replicas`.

    Example:

    >>> keras_simclr.distribute.per_replica_batch_size(4096, 8)
    512
    """
    global_batch_size = checks.positive_int("global_batch_size", global_batch_size)
    num_replicas = checks.positive_int("num_replicas", num_replicas)
    if global_batch_size % num_replicas:
        below = global_batch_size // num_replicas * num_replicas
        above = below + num_replicas
        nearest = f"{below} or {above}" if below else f"{above}"
        raise ValueError(
            f"The global batch size must be a multiple of the number of replicas. "
            f"Received: global_batch_size={global_batch_size} with "
            f"num_replicas={num_replicas}. Use a global batch size of {nearest}."
        )
    return global_batch_size // num_replicas


def resolve_strategy(name="auto", tpu_name=None, devices=None):
    """Creates the `tf.distribute.Strategy` SimCLR trains under.

    SimCLR pretrains on TPUs (Section 2.2: 32 to 128 cores); the same code scales
    over local GPUs or CPU devices with `MirroredStrategy` and over machines with
    `MultiWorkerMirroredStrategy`.

    Args:
        name: one of
            - `"auto"`: `"tpu"` when `tpu_name` is given, `"mirrored"` over all
              GPUs when there is more than one, else the default strategy (one
              device, no distribution).
            - `"one_device"`: `OneDeviceStrategy` on `devices[0]`, or on the first
              GPU (the CPU without one).
            - `"mirrored"`: `MirroredStrategy` over `devices` (all GPUs, or the CPU,
              when `None`).
            - `"multi_worker"`: `MultiWorkerMirroredStrategy`; the cluster comes
              from the `TF_CONFIG` environment variable.
            - `"tpu"`: connects to the TPU `tpu_name` (`None` or `"local"` for a TPU
              VM), initialises it and returns a `TPUStrategy`.
        tpu_name: the TPU's name or gRPC address, for `"tpu"` and `"auto"`.
        devices: device names for `"one_device"` and `"mirrored"`.

    Returns:
        A `tf.distribute.Strategy`. Create the model and optimizer in its `scope()`.

    Example:

    ```python
    strategy = keras_simclr.distribute.resolve_strategy("auto")
    with strategy.scope():
        model = keras_simclr.models.SimCLR(...)
    ```
    """
    _require_tf_distribute("resolve_strategy")
    tf = _tf()
    if name not in _STRATEGY_NAMES:
        raise ValueError(
            f"Unknown distribution strategy. Received: name={name!r}. Expected one "
            f"of {', '.join(repr(n) for n in _STRATEGY_NAMES)}."
        )
    if devices is not None and name not in ("one_device", "mirrored"):
        raise ValueError(
            "`devices` applies to the 'one_device' and 'mirrored' strategies only. "
            f"Received: name={name!r}, devices={devices!r}"
        )
    if name == "auto":
        if tpu_name is not None:
            return _tpu_strategy(tpu_name)
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
        return tf.distribute.get_strategy()
    if name == "one_device":
        if devices:
            device = devices[0]
        else:
            gpus = tf.config.list_logical_devices("GPU")
            device = gpus[0].name if gpus else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(list(devices) if devices else None)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu_name)


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices and returns their names.

    Lets `MirroredStrategy` run several replicas on a machine without accelerators,
    to try or test distributed training. It must run before TensorFlow initialises
    its devices (before the first op); calling it again with the same count is fine.

    Args:
        num_devices: the number of logical CPU devices, >= 1.

    Returns:
        The logical CPU device names, e.g. `["/device:CPU:0", "/device:CPU:1"]`.

    Example:

    ```python
    devices = keras_simclr.distribute.split_cpu(2)
    strategy = keras_simclr.distribute.resolve_strategy("mirrored", devices=devices)
    ```
    """
    if not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(
            f"`num_devices` must be an integer >= 1. Received: num_devices={num_devices!r}"
        )
    _require_tf_distribute("split_cpu")
    tf = _tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError:
        pass  # Already initialised: fine if the existing split has the same count.
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) != num_devices:
        raise ValueError(
            f"Cannot split the CPU into {num_devices} devices: TensorFlow already "
            f"initialised {len(devices)}. Split it before running any TensorFlow op."
        )
    return devices


def _tpu_strategy(tpu_name):
    tf = _tf()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_name)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _require_tf_distribute(function):
    if not uses_tf_distribute():
        raise ValueError(
            f"`keras_simclr.distribute.{function}` sets up `tf.distribute`, which "
            "only the TensorFlow backend runs; Keras' backend is "
            f"{keras.backend.backend()!r}. On JAX use "
            "`keras_simclr.distribute.data_parallel()` (and, for several CPU "
            "devices, XLA_FLAGS=--xla_force_host_platform_device_count=N set before "
            "JAX is imported)."
        )


def num_batch_shards(model=None):
    """How many parts the global batch is split into for a training step.

    Args:
        model: optional Keras model; on TensorFlow its `distribute_strategy` is
            asked, else the current strategy.

    Returns:
        A Python `int`: the replicas in sync on TensorFlow; on JAX the size of the
        batch axis of the `keras.distribution` set (1 without one).
    """
    if uses_tf_distribute():
        strategy = model.distribute_strategy if model is not None else _tf().distribute.get_strategy()
        return int(strategy.num_replicas_in_sync)
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    return int(mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)])


def is_tpu(model=None):
    """Whether the model trains under a `tf.distribute.TPUStrategy` (static shapes)."""
    if not uses_tf_distribute():
        return False
    strategy = model.distribute_strategy if model is not None else _tf().distribute.get_strategy()
    return isinstance(strategy, _tf().distribute.TPUStrategy)


def strategy_scope(model=None):
    """The context under which models and optimizers create their variables.

    Args:
        model: optional Keras model; on TensorFlow its `distribute_strategy`, else
            the current strategy, gives the scope.

    Returns:
        A context manager: the `tf.distribute` strategy's `scope()` on TensorFlow;
        on JAX a no-op, as `keras.distribution.set_distribution` lays out every
        variable created while it is set.
    """
    if not uses_tf_distribute():
        return contextlib.nullcontext()
    if model is not None:
        return model.distribute_strategy.scope()
    return _tf().distribute.get_strategy().scope()


def synchronized_batch_norm(synchronized):
    """The `synchronized` argument a `BatchNormalization` layer gets here.

    Global batch norm (Section 2.2) needs `synchronized=True` under `tf.distribute`,
    whose replicas each see their shard. On JAX the layer sees the global batch,
    sharded by `keras.distribution`, so its statistics are global already; Keras
    rejects `synchronized=True` there, hence `False`.

    Args:
        synchronized: bool, whether the statistics should cover the global batch.

    Returns:
        `synchronized` on TensorFlow, `False` on other backends.
    """
    return bool(synchronized) and uses_tf_distribute()


def data_parallel(devices=None):
    """Data parallelism over several devices on Keras' JAX backend.

    The JAX counterpart of `resolve_strategy("mirrored")`: a
    `keras.distribution.DataParallel` over `devices` (all devices when `None`),
    set as Keras' global distribution. Weights and optimizer state are replicated,
    every batch is split along its first axis, and the step still computes the loss
    of the global batch: the NT-Xent negatives of every device and global batch norm
    (Section 2.2) come from the sharding, the collectives from XLA. Set it before
    creating the model, so that its variables are laid out on every device.

    Args:
        devices: optional list of JAX device names or `jax.Device`s, e.g.
            `keras.distribution.list_devices()`; for N CPU devices set
            `XLA_FLAGS=--xla_force_host_platform_device_count=N` before JAX is
            imported.

    Returns:
        The `keras.distribution.DataParallel` set, or `None` (nothing set) with a
        single device.

    Example:

    ```python
    keras_simclr.distribute.data_parallel()  # all local devices
    model = keras_simclr.models.SimCLR(...)
    model.fit(views, batch_size=512)
    ```
    """
    if keras.backend.backend() != "jax":
        raise ValueError(
            "`keras_simclr.distribute.data_parallel` distributes on Keras' JAX "
            f"backend; the backend is {keras.backend.backend()!r}. On TensorFlow use "
            "`keras_simclr.distribute.resolve_strategy('mirrored')`."
        )
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    if len(devices) == 1:
        return None
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return distribution
