"""The evaluation part of the job: every protocol `config` asks for, on the encoder.

Reads the encoder a run saved in `model_dir` (or the one given), extracts the
features of both splits once, runs linear evaluation, kNN and, with
`train_mode="finetune"`, SimCLRv2's fine-tuning, and writes `results.json`, the
fine-tuned classifier (`finetuned.keras`) and pictures into `model_dir`.
"""

import logging
import os

import keras
import tensorflow as tf

from keras_simclr import augment
from keras_simclr import data
from keras_simclr import evaluation
from keras_simclr import files
from keras_simclr import visualization
from keras_simclr.planning import plan

log = logging.getLogger("keras_simclr")


def finetune_epochs(config):
    """`finetune_epochs`, or SimCLRv2's: 60 for 1% of the labels or fewer, else 30."""
    if config.finetune_epochs:
        return config.finetune_epochs
    return 60 if config.finetune_label_fraction <= 0.01 else 30


def ft_proj_selector(config):
    """`ft_proj_selector`, or SimCLRv2's: the first head layer when there is one."""
    if config.ft_proj_selector is not None:
        return config.ft_proj_selector
    return min(1, config.num_proj_layers)


def _fine_tune(config, plan_, encoder, projection_head, train, test, preprocess):
    """SimCLRv2's fine-tuning: from projection-head layer `ft_proj_selector`, with
    random crops and flips, on a class-balanced fraction of the labels.

    Returns the result; the fine-tuned classifier goes to `finetuned.keras`.
    """
    selector = ft_proj_selector(config)
    if selector and projection_head is None:
        model = keras.models.load_model(
            os.path.join(config.model_dir, "model.keras"), compile=False
        )
        projection_head = model.projection_head
    result, classifier = evaluation.fine_tune(
        encoder, train, test, label_fraction=config.finetune_label_fraction,
        head=projection_head if selector else None,
        head_layers=selector,
        augment=augment.crop_and_flip(plan_.image_size, seed=config.seed),
        preprocess=preprocess, epochs=finetune_epochs(config), seed=config.seed,
        dataset_name=config.dataset,
    )
    # --mode=eval of the official weights may start with no model_dir yet.
    tf.io.gfile.makedirs(config.model_dir)
    files.save_atomic(classifier, os.path.join(config.model_dir, "finetuned.keras"))
    return result


def check_evaluation_inputs(config, plan_, encoder_file):
    """Fails before any work if the evaluation cannot read what it needs.

    The labelled training split (`plan_` read it), a labelled evaluation split and,
    with `encoder_file`, the trained encoder in `model_dir`; pretraining checks this
    first, so that a missing split is not found after hours of training.
    """
    pretrain_only = " or --mode=train to pretrain only" if config.mode != "eval" else ""
    if plan_.info.num_classes is None:
        raise ValueError(
            f"--train_split={config.train_split!r} of {config.dataset!r} has no labels, "
            "so the representation cannot be evaluated on it (the linear classifier "
            "and kNN train on its labels). Pass a labelled --dataset or --train_split"
            f"{pretrain_only}."
        )
    try:
        eval_info = data.info(config.dataset, config.eval_split, data_dir=config.data_dir)
    except ValueError as error:
        folder_hint = ""
        if config.dataset.startswith("folder:"):
            root = config.dataset[len("folder:"):]
            split_name = config.eval_split.split("[")[0].split("+")[0].strip()
            folder_hint = (
                f"put the evaluation images in {os.path.join(root, split_name)}/ "
                f"(and the training images in {os.path.join(root, 'train')}/), or "
            )
        raise ValueError(
            f"The evaluation split --eval_split={config.eval_split!r} of "
            f"{config.dataset!r} cannot be read: {error} Fix: {folder_hint}evaluate on "
            "a held-out slice (--train_split='train[:90%]' --eval_split='train[90%:]')"
            f"{pretrain_only}. Nothing was trained or written."
        ) from None
    if eval_info.num_classes is None or eval_info.num_examples == 0:
        problem = "has no labels" if eval_info.num_examples else "holds no examples"
        raise ValueError(
            f"--eval_split={config.eval_split!r} of {config.dataset!r} {problem}, so "
            "the representation cannot be evaluated on it. Pass a labelled, non-empty "
            f"--eval_split{pretrain_only}."
        )
    if encoder_file:
        path = os.path.join(config.model_dir, "encoder.keras")
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"No trained encoder at {path!r}: run with --mode=train (or "
                "train_then_eval) first, or point --model_dir at a finished run."
            )


def evaluate(config, encoder=None, projection_head=None):
    """Evaluates the encoder saved in `model_dir` (or the one given) on `config`.

    With `train_mode="finetune"` it also fine-tunes (SimCLRv2's recipe) from the
    given `projection_head`, or the one saved in `model_dir`, and saves the
    fine-tuned classifier as `model_dir/finetuned.keras`.

    Returns:
        A list of `keras_simclr.evaluation.EvaluationResult`.
    """
    plan_ = plan(config)
    if encoder is None:
        # With an encoder given (train_then_eval), pretrain() checked these already;
        # for a folder data set the check reads every image once.
        check_evaluation_inputs(config, plan_, encoder_file=True)
    if encoder is None:
        encoder = keras.models.load_model(os.path.join(config.model_dir, "encoder.keras"))
    (train, preprocess), (test, _) = (
        evaluation_data(config, plan_, split)
        for split in (config.train_split, config.eval_split)
    )
    results = []
    common = dict(dataset_name=config.dataset)
    # Features once, in inference mode; every protocol on frozen features reuses them.
    train_features, test_features = (
        evaluation.extract_features(encoder, split, preprocess, config.eval_batch_size)
        for split in (train, test)
    )
    if "linear" in config.eval_protocols:
        results.append(
            evaluation.linear_eval(None, train_features, test_features, seed=config.seed, **common)
        )
    if "knn" in config.eval_protocols:
        # k=200 as usual, unless the training split is smaller than that.
        k = min(200, plan_.info.num_examples)
        results.append(evaluation.knn_eval(None, train_features, test_features, k=k, **common))
    if config.train_mode == "finetune":
        results.append(_fine_tune(config, plan_, encoder, projection_head, train, test, preprocess))
    evaluation.write_results(results, os.path.join(config.model_dir, "results.json"))
    return results


def evaluation_data(config, plan_, split):
    """The evaluation batches of `split` and the preprocessing still to apply to them.

    The reference centre-crops evaluation images (87.5% of the side) only above
    CIFAR size. Images of different sizes are cropped at full resolution, each
    resized once, before batching, as the reference does; images of one size are
    cropped in batches, by the returned `preprocess`.

    Args:
        config: the run's `Config`.
        plan_: its `Plan`.
        split: the split to read, with optional tfds slicing.

    Returns:
        `(dataset, preprocess)`: a dataset of `(images, labels)` batches (float32 in
        [0, 1]) and the callable to apply to them before the encoder, or `None`
        when there is nothing left to do.
    """
    size = plan_.image_size
    if plan_.sizes_differ:
        source = data.load(config.dataset, split, data_dir=config.data_dir)
        crop = clean_image_preprocess(plan_)
        return data.evaluation_dataset(source, config.eval_batch_size, crop), None
    source = data.load(config.dataset, split, data_dir=config.data_dir, image_size=size)
    return data.evaluation_dataset(source, config.eval_batch_size), clean_image_preprocess(plan_)


def clean_image_preprocess(plan_):
    """What makes a clean image the encoder's input, as the evaluation reads it.

    A centre crop of 87.5% of the side above CIFAR size (the reference's); at CIFAR
    size and below, images of different sizes get the largest central window of
    the output's aspect ratio, and images of one size (loaded at the encoder's
    size) nothing: `None`.
    """
    size = plan_.image_size
    if plan_.sizes_differ:
        return augment.CenterCropResize(
            size, size, crop_proportion=0.875 if size > 32 else 1.0
        )
    return augment.CenterCropResize(size, size) if size > 32 else None


def write_pictures(config, encoder):
    """Training curves and a 2-D embedding of the test set, as PNGs in model_dir."""
    curves = os.path.join(config.model_dir, "history.csv")
    try:
        if tf.io.gfile.exists(curves):
            visualization.plot_training_curves(curves, os.path.join(config.model_dir, "curves.png"))
        if encoder is None:
            encoder = keras.models.load_model(os.path.join(config.model_dir, "encoder.keras"))
        test, preprocess = evaluation_data(config, plan(config), config.eval_split)
        visualization.plot_embedding(
            encoder, test, os.path.join(config.model_dir, "embedding.png"),
            preprocess=preprocess, method="pca", class_names=plan(config).info.class_names,
        )
    except ImportError as error:
        log.warning("No pictures: %s", error)
