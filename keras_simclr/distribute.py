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
"""

import tensorflow as tf

from keras_simclr import checks

_STRATEGY_NAMES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def _replica_context():
    """The replica context when more than one replica runs in sync, else `None`.

    In a cross-replica context (`with strategy.scope():` outside `strategy.run`)
    tensors hold the global batch already, so there is nothing to gather.
    """
    context = tf.distribute.get_replica_context()
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
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def replica_index():
    """This replica's index among the replicas in sync; 0 without a strategy.

    Returns:
        A scalar int32 tensor (a traced value on TPUs).

    Example:

    >>> int(keras_simclr.distribute.replica_index())
    0
    """
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
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


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
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_name)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
