"""The official SimCLR weights in the job: --mode=convert, and --mode=eval --checkpoint.

`convert` writes a released checkpoint as Keras files; `official_encoder` gives the
evaluation the released encoder and head instead of a trained run's. Both read the
checkpoint with `keras_simclr.models.from_reference_checkpoint`.
"""

import dataclasses
import json
import os

import keras
import tensorflow as tf

from keras_simclr import files
from keras_simclr import models
from keras_simclr.evaluation_job import check_evaluation_inputs
from keras_simclr.planning import plan


def convert(config):
    """Writes the official weights `config.checkpoint` as Keras files (--mode=convert).

    `model_dir` gets `model.keras` (the `SimCLR` model: encoder, projection head, and
    the checkpoint's classifier as its probe when that reads h), `encoder.keras`,
    `classifier.keras` when the checkpoint has a classifier, and `conversion.json`
    (what was read; with `verify`, the largest differences from the SavedModel).
    The encoder takes `image_size` images, or any size when it is unset.

    Returns:
        With `verify`, the differences `keras_simclr.models.verify_saved_model`
        measured; else an empty dict.
    """
    saved_model = models.convert.saved_model_directory(config.checkpoint) if config.verify else None
    if tf.io.gfile.exists(os.path.join(config.model_dir, "config.json")):
        raise ValueError(
            f"model_dir {config.model_dir!r} holds a training run; convert into another "
            "--model_dir. Nothing was overwritten."
        )
    model, classifier = models.from_reference_checkpoint(
        config.checkpoint,
        input_shape=(config.image_size, config.image_size, 3),
        ft_proj_selector=config.ft_proj_selector,
        classifier=True,
    )
    tf.io.gfile.makedirs(config.model_dir)
    written = {"model": model, "encoder": model.encoder, "classifier": classifier}
    for name, keras_model in written.items():
        if keras_model is not None:
            files.save_atomic(keras_model, os.path.join(config.model_dir, f"{name}.keras"))
    record = dict(
        checkpoint=config.checkpoint,
        encoder=model.encoder.name,
        # What the shapes said the encoder is: depth, width, selective kernels.
        encoder_config=model.encoder.get_config(),
        feature_dim=int(model.encoder.output_shape[-1]),
        projection_head_layers=_dense_layers(model.projection_head),
        classifier_classes=None if classifier is None else int(classifier.output_shape[-1]),
        # The classifier's dense layers past the encoder: the head's, then its own.
        classifier_reads_head_layer=None if classifier is None else _dense_layers(classifier) - 1,
        files=sorted(f"{name}.keras" for name, m in written.items() if m is not None),
    )
    reads = record["classifier_reads_head_layer"]
    classified = (
        ", no classifier" if classifier is None
        else f", a classifier of {record['classifier_classes']} classes on "
        + (f"head layer {reads}" if reads else "h")
    )
    print(
        f"Converted {config.checkpoint}: {model.encoder.name} (h of {record['feature_dim']}), "
        f"a {record['projection_head_layers']}-layer projection head{classified}; wrote "
        f"{', '.join(record['files'])} to {config.model_dir}",
        flush=True,
    )
    differences = {}
    if saved_model:
        differences = models.verify_saved_model(saved_model, model, classifier, seed=config.seed)
        record["verify"] = differences
        for name, difference in differences.items():
            print(
                f"verify {name}: largest difference from the SavedModel "
                f"{difference['max_abs_difference']:.3g} "
                f"({difference['relative_difference']:.3g} of its largest value)",
                flush=True,
            )
    files.write_atomic(os.path.join(config.model_dir, "conversion.json"), json.dumps(record, indent=2))
    return differences


def official_encoder(config):
    """The official encoder and head for --mode=eval --checkpoint, after the checks.

    Returns the encoder, the head, and `config` with `num_proj_layers` set to the
    head's, so fine-tuning starts from its first layer when it has one.
    """
    plan_ = plan(config)
    if plan_.channels != 3:
        raise ValueError(
            f"The official weights take RGB images; {config.dataset!r} has "
            f"{plan_.channels} channel(s). Evaluate them on an RGB data set."
        )
    check_evaluation_inputs(config, plan_, encoder_file=False)
    model = models.from_reference_checkpoint(
        config.checkpoint, input_shape=(plan_.image_size, plan_.image_size, 3)
    )
    return (
        model.encoder,
        model.projection_head,
        dataclasses.replace(config, num_proj_layers=_dense_layers(model.projection_head)),
    )


def _dense_layers(model):
    """The number of dense layers in `model` and the models nested in it."""
    return sum(
        _dense_layers(layer) if isinstance(layer, keras.Model)
        else isinstance(layer, keras.layers.Dense)
        for layer in model.layers
    )
