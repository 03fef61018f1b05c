"""Pretrain SimCLR on Fashion-MNIST with `model.fit()`, then evaluate it linearly.

The whole method in one user script, with no command line of the library: two random
views of every image (`SimCLRAugment`), a ResNet encoder f and a projection head g,
the NT-Xent loss inside `SimCLR.fit()`, momentum SGD with warm-up and cosine decay, an
online linear probe during training, and afterwards the paper's linear evaluation (a
linear classifier on the frozen representation h, Section 4 / Appendix B.6).

The recipe is the one docs/quality_study.md found best at batch 256 on 2 CPU cores,
the `simclr` command's defaults: Nesterov momentum 0.9 at 0.6 x batch/256 after a
0.3-epoch warm-up, then cosine decay; the reference's weight decay (an L2 term of 1e-4
on every weight but batch norm); temperature 0.2; bfloat16 where the CPU has it. LARS,
the paper's optimizer for batches of 4,096 and more, lost 1.1 points of linear
evaluation to it at this batch size.

Fashion-MNIST (28x28 grayscale, 10 classes) loads offline from the Debian package
`dataset-fashion-mnist` when it is installed, else from TensorFlow Datasets.

Run:

    python examples/pretrain_fashion_mnist.py                  # the default run
    python examples/pretrain_fashion_mnist.py --epochs 1 --steps_per_epoch 2 \\
        --train_split "train[:1024]" --test_split "test[:512]"   # seconds (CI)

What the default run costs and gives: examples/README.md.

`finetune.py` reuses `pretrain()` from this file.
"""

import argparse
import os

import keras

from keras_simclr import augment
from keras_simclr import data
from keras_simclr import evaluation
from keras_simclr import models
from keras_simclr import optimizers
from keras_simclr import runner as job

IMAGE_SIZE = 28
NUM_CLASSES = 10


def pretrain(
    train_split="train",
    epochs=3,
    steps_per_epoch=None,
    batch_size=256,
    width_multiplier=0.25,
    learning_rate=0.6,
    weight_decay=1e-4,
    warmup_epochs=0.3,
    temperature=0.2,
    seed=0,
    verbose=2,
):
    """Pretrains SimCLR on a Fashion-MNIST split and returns the trained model.

    `model.encoder` is f (images -> h), `model.projection_head` is g (h -> z).
    """
    keras.utils.set_random_seed(seed)
    # bfloat16 compute where the CPU (avx512_bf16, AMX) or accelerator has it: 1.5x
    # faster here; float32 elsewhere.
    keras.mixed_precision.set_global_policy(job.mixed_precision_policy("auto"))
    train = data.load("fashion_mnist", train_split)
    num_examples = data.info("fashion_mnist", train_split).num_examples
    steps_per_epoch = steps_per_epoch or num_examples // batch_size

    # Two independent calls of the augmentation make the positive pair. The
    # grayscale preset is the paper's crop + flip + colour jitter, restricted to
    # what means something on one channel (brightness and contrast).
    augmenter = augment.SimCLRAugment(IMAGE_SIZE, preset="grayscale", seed=seed)
    # probe_images=True carries each batch's clean images beside the views, for the
    # online probe: {"views": (view_1, view_2), "images": images}, labels.
    dataset = data.pretraining_dataset(
        train, batch_size, augment=augmenter, seed=seed, probe_images=True
    )

    # 28x28 inputs get the CIFAR stem (3x3 stride-1 convolution, no max-pool).
    encoder = models.resnet(18, width_multiplier, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1))
    head = models.projection_head(encoder.output_shape[-1], num_layers=2, output_dim=128)
    # num_classes adds the online linear probe on stop_gradient(h): its accuracy in
    # the logs follows the quality of h as it trains, without touching the encoder.
    # probe_on="images" trains it on h of the clean images, as the linear
    # evaluation reads them, rather than of the harder augmented views.
    # probe_average scores it with a moving average of its weights, which follows the
    # moving encoder without the noise of each step (docs/quality_study.md).
    # l2_weight_decay is the reference's weight decay for optimizers other than LARS:
    # wd * sum(w**2) / 2 over every weight but batch norm, added to the loss.
    model = models.SimCLR(
        encoder,
        head,
        temperature=temperature,
        num_classes=NUM_CLASSES,
        probe_on="images",
        probe_average=0.98,
        l2_weight_decay=weight_decay,
    )

    total_steps = epochs * steps_per_epoch
    schedule = optimizers.WarmupCosineDecay(
        optimizers.scaled_learning_rate(learning_rate, batch_size, "linear"),
        warmup_steps=int(warmup_epochs * steps_per_epoch),
        total_steps=total_steps,
    )
    # The probe has its own Adam, so the encoder's learning rate never shakes it;
    # alpha=1.0 keeps its rate at 0.1 after the warm-up (the average settles it).
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
        probe_optimizer=keras.optimizers.Adam(
            optimizers.WarmupCosineDecay(
                0.1, int(warmup_epochs * steps_per_epoch), total_steps, alpha=1.0
            )
        ),
    )
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=verbose)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--steps_per_epoch", type=int, default=None,
        help="steps per epoch (default: one pass over the training split)",
    )
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument(
        "--train_split", default="train", help='tfds split syntax, e.g. "train[:10%%]"'
    )
    parser.add_argument("--test_split", default="test")
    parser.add_argument("--width_multiplier", type=float, default=0.25)
    parser.add_argument(
        "--output_dir", default="runs/examples/fashion_mnist",
        help="where the trained model and encoder are saved as .keras files",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = pretrain(
        train_split=args.train_split,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        width_multiplier=args.width_multiplier,
        seed=args.seed,
    )
    os.makedirs(args.output_dir, exist_ok=True)
    # The whole model (to continue training or fine-tune from the head, as
    # finetune.py --pretrained does) and the encoder alone (for downstream use).
    model.save(os.path.join(args.output_dir, "simclr.keras"))
    model.encoder.save(os.path.join(args.output_dir, "encoder.keras"))

    # Linear evaluation: features h of the frozen encoder, a multinomial logistic
    # regression on them (L2 strength chosen on a validation split).
    train = data.evaluation_dataset(data.load("fashion_mnist", args.train_split), 512)
    test = data.evaluation_dataset(data.load("fashion_mnist", args.test_split), 512)
    result = evaluation.linear_eval(model.encoder, train, test, dataset_name="fashion_mnist")
    print(evaluation.format_table(result))
    print(f"linear evaluation accuracy: {100 * result.accuracy:.2f}%")
    return result


if __name__ == "__main__":
    main()
