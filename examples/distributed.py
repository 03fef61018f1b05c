"""Distributed SimCLR: the pretraining of pretrain_fashion_mnist.py on several replicas.

SimCLR needs large batches (Section 2.2: 4096 images on 32 to 128 TPU cores), split
over many accelerators. Three things differ from one device, and keras_simclr does
each of them inside `SimCLR.fit()`; the script only has to create the model in the
strategy's scope and feed it the global batch:

- negatives come from every replica: each replica scores its own views against the
  projections of all replicas (an all-gather whose gradients flow back);
- batch norm is global: `synchronized_bn=True` aggregates its statistics over the
  replicas, so no replica can "cheat" with statistics of its own shard;
- the logged loss and metrics are global, and the summed gradients equal those of
  one device with the global batch.

Run (CI does this, in seconds, on two logical CPU devices):

    python examples/distributed.py --epochs 1 --steps_per_epoch 2 \\
        --global_batch_size 64 --train_split "train[:1024]" --test_split "test[:512]"

Without arguments it trains 2 epochs with a global batch of 512 over all GPUs, or, on
a machine without GPUs, over the CPU split into 2 logical devices (splitting a CPU
shows how it works, it does not make it faster). What that run costs and gives:
examples/README.md.

Several machines: `MultiWorkerMirroredStrategy`
    Start the same command on every machine with `--strategy multi_worker` and the
    `TF_CONFIG` environment variable describing the cluster and this machine's place
    in it, e.g. on the first of two machines:

        TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                    "task": {"type": "worker", "index": 0}}' \\
            python examples/distributed.py --strategy multi_worker

    and `"index": 1` on the second. Worker 0 is the chief: here it alone evaluates
    and saves. Every worker reads its own shard of the data
    (`distributed_pretraining_dataset` gives each input pipeline its part).
    Plain Keras 3 `fit()` is broken under this strategy (keras-team/keras#20585,
    tensorflow/tensorflow#72388: it reduces an input batch to build the model and
    reduces scalar logs along axis 0); `SimCLR.fit()` avoids both, and the library's
    tests train two local worker processes against one device.

TPUs: `TPUStrategy`
    `--strategy tpu` (on a Cloud TPU VM or a Colab TPU runtime; `--tpu_name` for a
    remote TPU) connects to the TPU and trains on all its cores. TPUs need static
    shapes, which `drop_remainder=True` in the input pipeline gives; they compute in
    bfloat16 well (`keras.mixed_precision.set_global_policy("mixed_bfloat16")`) and
    compile the step with XLA. The data must be readable from the TPU host (for tfds,
    a `gs://` data_dir on a TPU node). See notebooks/simclr_tpu_cifar10.ipynb.
"""

import argparse

import keras
import tensorflow as tf

from keras_simclr import augment
from keras_simclr import data
from keras_simclr import distribute
from keras_simclr import evaluation
from keras_simclr import models
from keras_simclr import optimizers

IMAGE_SIZE = 28
NUM_CLASSES = 10


def make_strategy(name, cpu_devices=None, tpu_name=None):
    """The `tf.distribute` strategy to train under.

    Must run before TensorFlow creates its devices (before the first op), because
    splitting the CPU into logical devices is only possible then.
    """
    if name == "mirrored":
        if cpu_devices is None and tf.config.list_physical_devices("GPU"):
            return distribute.resolve_strategy("mirrored")  # every local GPU
        devices = distribute.split_cpu(cpu_devices or 2)
        return distribute.resolve_strategy("mirrored", devices=devices)
    if name == "multi_worker":
        return distribute.resolve_strategy("multi_worker")  # the cluster: TF_CONFIG
    return distribute.resolve_strategy("tpu", tpu_name=tpu_name)


def is_chief(strategy):
    """Whether this process evaluates and saves: worker 0 (or the chief) of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--strategy", choices=("mirrored", "multi_worker", "tpu"), default="mirrored"
    )
    parser.add_argument(
        "--cpu_devices", type=int, default=None,
        help="mirror over this many logical CPU devices (default: all GPUs, or 2 CPUs)",
    )
    parser.add_argument("--tpu_name", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--steps_per_epoch", type=int, default=None,
        help="steps per epoch (default: one pass over the training split)",
    )
    parser.add_argument(
        "--global_batch_size", type=int, default=512,
        help="images per step over all replicas; a multiple of the replica count",
    )
    parser.add_argument("--train_split", default="train")
    parser.add_argument("--test_split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    strategy = make_strategy(args.strategy, args.cpu_devices, args.tpu_name)
    replicas = strategy.num_replicas_in_sync
    print(
        f"{type(strategy).__name__} with {replicas} replicas; global batch "
        f"{args.global_batch_size} = {args.global_batch_size // replicas} per replica"
    )
    num_examples = data.info("fashion_mnist", args.train_split).num_examples
    steps_per_epoch = args.steps_per_epoch or num_examples // args.global_batch_size

    # Each input pipeline (one per worker) loads and augments its own shard and
    # batches it per replica; the model receives the global batch.
    augmenter = augment.SimCLRAugment(IMAGE_SIZE, preset="grayscale", seed=args.seed)
    dataset = data.distributed_pretraining_dataset(
        strategy,
        lambda: data.load("fashion_mnist", args.train_split),
        args.global_batch_size,
        augment=augmenter,
        seed=args.seed,
        probe_images=True,  # the probe trains on the clean images
    )

    # Variables created in the scope are mirrored on every replica.
    with strategy.scope():
        encoder = models.resnet(
            18, 0.25, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), synchronized_bn=True
        )
        head = models.projection_head(encoder.output_shape[-1], synchronized_bn=True)
        model = models.SimCLR(
            encoder, head, temperature=0.2, num_classes=NUM_CLASSES, probe_on="images",
            probe_average=0.98, l2_weight_decay=1e-4,
        )
        total_steps = args.epochs * steps_per_epoch
        warmup_steps = int(0.3 * steps_per_epoch)
        schedule = optimizers.WarmupCosineDecay(
            # The learning rate follows the global batch, whatever the replica count.
            optimizers.scaled_learning_rate(0.6, args.global_batch_size, "linear"),
            warmup_steps=warmup_steps,
            total_steps=total_steps,
        )
        # The study's recipe (docs/quality_study.md). From global batches of a few
        # thousand on, use optimizers.LARS(schedule, weight_decay=1e-6) as the paper
        # does, without l2_weight_decay (LARS decays inside its update).
        model.compile(
            optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
            probe_optimizer=keras.optimizers.Adam(  # constant after the warm-up
                optimizers.WarmupCosineDecay(0.1, warmup_steps, total_steps, alpha=1.0)
            ),
        )
    model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps_per_epoch, verbose=2)

    if is_chief(strategy):
        train = data.evaluation_dataset(data.load("fashion_mnist", args.train_split), 512)
        test = data.evaluation_dataset(data.load("fashion_mnist", args.test_split), 512)
        result = evaluation.linear_eval(model.encoder, train, test, dataset_name="fashion_mnist")
        print(evaluation.format_table(result))
        print(f"linear evaluation accuracy: {100 * result.accuracy:.2f}%")
        return result
    return None


if __name__ == "__main__":
    main()
