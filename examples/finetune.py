"""Semi-supervised learning: fine-tune a SimCLR encoder with 1% of the labels.

The paper's semi-supervised protocol (Section 6, Table 7; SimCLRv2 Section 3):
pretrain without labels on the whole training set, then fine-tune the whole encoder,
plus a new linear classifier, on a small class-balanced labelled subset. SimCLRv2
fine-tunes from the first layer of the projection head rather than from h, which
`head=..., head_layers=1` reproduces. The same network trained from scratch on the
same labels is the baseline to beat.

Run:

    python examples/pretrain_fashion_mnist.py                      # saves simclr.keras
    python examples/finetune.py --pretrained runs/examples/fashion_mnist/simclr.keras

Without `--pretrained` the script pretrains first, with pretrain_fashion_mnist.py's
`pretrain()`. CI runs it in seconds:

    python examples/finetune.py --pretrain_epochs 1 --steps_per_epoch 2 \\
        --finetune_epochs 1 --batch_size 64 --train_split "train[:1000]" \\
        --test_split "test[:256]"

The default fine-tuning uses 1% of the 60,000 labels (600 images, class-balanced) for
60 epochs, as SimCLRv2 on 1% of ImageNet, and trains the supervised baseline on the
same labels; `--label_fraction 0.1` fine-tunes on 10% for 30 epochs, SimCLRv2's other
setting. A few epochs of pretraining are worth most with the fewest labels: with 10%,
30 epochs from scratch catch up with a 3-epoch encoder. What each costs and gives:
examples/README.md.
"""

import argparse
import os
import sys

import keras

from keras_simclr import augment
from keras_simclr import data
from keras_simclr import evaluation

# pretrain_fashion_mnist.py sits next to this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretrain_fashion_mnist import pretrain  # noqa: E402

IMAGE_SIZE = 28


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pretrained", default=None,
        help="a SimCLR model saved by pretrain_fashion_mnist.py (simclr.keras)",
    )
    parser.add_argument("--pretrain_epochs", type=int, default=3)
    parser.add_argument(
        "--steps_per_epoch", type=int, default=None,
        help="pretraining steps per epoch (default: one pass over the training split)",
    )
    parser.add_argument("--label_fraction", type=float, default=0.01)
    parser.add_argument(
        "--finetune_epochs", type=int, default=None,
        help="default: SimCLRv2's, 60 for 1%% of the labels or fewer, else 30",
    )
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--train_split", default="train")
    parser.add_argument("--test_split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.pretrained:
        model = keras.models.load_model(args.pretrained, compile=False)
    else:
        model = pretrain(
            train_split=args.train_split,
            epochs=args.pretrain_epochs,
            steps_per_epoch=args.steps_per_epoch,
            batch_size=args.batch_size,
            seed=args.seed,
        )

    train = data.load_fashion_mnist(split=args.train_split)
    test = data.load_fashion_mnist(split=args.test_split)
    common = dict(
        label_fraction=args.label_fraction,
        augment=augment.crop_and_flip(IMAGE_SIZE, seed=args.seed),
        epochs=args.finetune_epochs or (60 if args.label_fraction <= 0.01 else 30),
        batch_size=args.batch_size,
        seed=args.seed,
        dataset_name="fashion_mnist",
    )
    # The pretrained encoder and the first projection-head layer, copied (the
    # originals stay untouched), with a new linear classifier on top. Nesterov
    # momentum, learning rate 0.05 x batch / 256 with cosine decay, no weight decay.
    fine_tuned, _ = evaluation.fine_tune(
        model.encoder, train, test, head=model.projection_head, head_layers=1, **common
    )
    # The same architecture from a random initialisation (clone_model creates new,
    # freshly initialised weights), trained on the same labels.
    scratch = keras.models.clone_model(model.encoder)
    supervised, _ = evaluation.supervised_baseline(scratch, train, test, **common)

    print(evaluation.format_table([fine_tuned, supervised]))
    print(f"fine-tuned accuracy: {100 * fine_tuned.accuracy:.2f}%")
    print(f"supervised baseline accuracy: {100 * supervised.accuracy:.2f}%")
    return fine_tuned, supervised


if __name__ == "__main__":
    main()
