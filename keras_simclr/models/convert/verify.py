"""`verify_saved_model`: a conversion against the SavedModel it came from."""

import logging

import numpy as np
import tensorflow as tf

from keras_simclr import checks
from keras_simclr.models.convert.reading import saved_model_directory
from keras_simclr.models.simclr import SimCLR


def verify_saved_model(saved_model, model, classifier=None, images=None, num_images=2, seed=0):
    """Compares a converted model with the SavedModel it came from, on random images.

    Runs the released SavedModel (`tf.saved_model.load`, called as the reference's
    colabs call it: `saved_model(images, trainable=False)`) and the converted
    `model` on the same images (random ones in [0, 1] unless given), and measures
    the largest difference of each output both have: h (`final_avg_pool`), z
    (`proj_head_output`) and, with `classifier`, the logits (`logits_sup`).

    Args:
        saved_model: path of the SavedModel directory (or of the folder holding
            its `saved_model/`).
        model: the `SimCLR` model `from_reference_checkpoint` returned for it.
        classifier: optional classifier it returned.
        images: optional float32 batch `(n, height, width, 3)` in [0, 1] to compare
            on. Defaults to random images of the encoder's input size (224 when it
            takes any).
        num_images: positive int, how many random images. Defaults to `2`.
        seed: int, seed of the random images. Defaults to `0`.

    Returns:
        A dict mapping `"h"`, `"z"`, `"logits"` (those compared) to a dict with
        `max_abs_difference` and `relative_difference` (that difference over the
        largest magnitude of the SavedModel's output).

    Example:

    ```python
    path = "simclrv2/finetuned_10pct/r50_1x_sk0/saved_model"
    model, classifier = keras_simclr.models.from_reference_checkpoint(path, classifier=True)
    keras_simclr.models.verify_saved_model(path, model, classifier)
    # {'h': {'max_abs_difference': 2e-06, 'relative_difference': 1e-07}, ...}
    ```
    """
    directory = saved_model_directory(saved_model)
    if not isinstance(model, SimCLR):
        raise ValueError(
            "`model` must be the SimCLR model `from_reference_checkpoint` returned. "
            f"Received: model of type {type(model).__name__}"
        )
    num_images = checks.positive_int("num_images", num_images)
    if images is None:
        height, width = (side or 224 for side in model.encoder.inputs[0].shape[1:3])
        images = np.random.default_rng(seed).uniform(0.0, 1.0, (num_images, height, width, 3))
    images = tf.constant(images, tf.float32)
    logger = tf.get_logger()
    level = logger.level
    # The released SavedModels log a warning per function with a custom gradient
    # (hundreds) while loading; inference needs no gradient.
    logger.setLevel(logging.ERROR)
    try:
        loaded = tf.saved_model.load(directory)
    finally:
        logger.setLevel(level)
    try:
        outputs = loaded(images, trainable=False)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"The SavedModel at {directory!r} cannot be called as the released ones are "
            f"(`model(images, trainable=False)` returning a dict): {error}"
        ) from None
    if not isinstance(outputs, dict):
        raise ValueError(
            f"The SavedModel at {directory!r} returned {type(outputs).__name__}, not the "
            "dict of named outputs (final_avg_pool, logits_sup, ...) the releases return."
        )
    h = model.encoder(images, training=False)
    ours = {
        "h": ("final_avg_pool", h),
        "z": ("proj_head_output", model.projection_head(h, training=False)),
    }
    if classifier is not None:
        ours["logits"] = ("logits_sup", classifier(images, training=False))
    differences = {}
    for name, (key, value) in ours.items():
        if key not in outputs:
            continue
        reference = np.asarray(outputs[key], np.float64)
        difference = float(np.max(np.abs(np.asarray(value, np.float64) - reference)))
        scale = float(np.max(np.abs(reference)))
        differences[name] = {
            "max_abs_difference": difference,
            "relative_difference": difference / scale if scale else difference,
        }
    if not differences:
        raise ValueError(
            f"The SavedModel at {directory!r} returned none of final_avg_pool, "
            f"proj_head_output, logits_sup (it returned {sorted(outputs)})."
        )
    return differences
