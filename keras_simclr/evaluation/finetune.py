"""Semi-supervised fine-tuning on a class-balanced labelled subset (paper Section 6;
SimCLRv2 Section 3), and the same network trained from scratch with labels."""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from keras_simclr.evaluation.features import _batches
from keras_simclr.evaluation.features import _check_data
from keras_simclr.evaluation.features import _check_labels
from keras_simclr.evaluation.features import _extract
from keras_simclr.evaluation.features import _labels_of
from keras_simclr.images import to_unit_float
from keras_simclr.evaluation.linear import _default_learning_rate
from keras_simclr.evaluation.results import EvaluationResult
from keras_simclr.evaluation.results import _top_k_accuracy
from keras_simclr import checks


def balanced_subset(labels, fraction, seed=0):
    """Indices of a class-balanced labelled subset, chosen deterministically by seed.

    The semi-supervised protocol (paper Section 6, following Zhai et al., 2019) fine-
    tunes on 1% or 10% of the training labels. The subset holds
    `round(fraction * len(labels))` examples, split as evenly as possible across the
    classes (class sizes differ by at most one; which classes get the remainder is
    drawn by `seed`). A class smaller than its share contributes all its examples
    (and the subset is that much smaller).
    With one seed the subsets are nested: the 1% subset is inside the 10% one.

    Args:
        labels: integer class ids, shape `(n,)`.
        fraction: the labelled fraction, in (0, 1]; 1.0 keeps every example.
        seed: integer seed of the choice.

    Returns:
        Sorted int64 indices into `labels`.

    Example:

    >>> labels = np.repeat(np.arange(10), 100)
    >>> indices = balanced_subset(labels, 0.1, seed=0)
    >>> np.bincount(labels[indices]).tolist()
    [10, 10, 10, 10, 10, 10, 10, 10, 10, 10]
    """
    labels = _check_labels(labels, "labels")
    checks.fraction("fraction", fraction)
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}")
    if fraction == 1.0:
        return np.arange(labels.size, dtype=np.int64)
    classes = np.unique(labels)
    total = int(math.floor(fraction * labels.size + 0.5))
    if total < classes.size:
        raise ValueError(
            f"`fraction` keeps {total} of {labels.size} examples, fewer than the "
            f"{classes.size} classes. Use a fraction of at least "
            f"{classes.size / labels.size:.4g}. Received: fraction={fraction}"
        )
    rng = np.random.default_rng(seed)
    # Every draw below is independent of `fraction`, which makes the subsets nested.
    rank = np.empty(classes.size, np.int64)
    rank[rng.permutation(classes.size)] = np.arange(classes.size)
    quota = total // classes.size + (rank < total % classes.size)
    chosen = []
    for label, count in zip(classes, quota):
        members = np.flatnonzero(labels == label)
        chosen.append(members[rng.permutation(members.size)][:count])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def fine_tune(
    encoder,
    train_data,
    test_data,
    label_fraction=0.1,
    *,
    head=None,
    head_layers=1,
    augment=None,
    preprocess=None,
    epochs=30,
    batch_size=256,
    learning_rate=None,
    optimizer=None,
    seed=0,
    verbose=0,
    dataset_name="unnamed",
):
    """Semi-supervised fine-tuning on a class-balanced labelled subset.

    The paper's semi-supervised protocol (Section 6): the whole pretrained encoder plus
    a new linear head is trained with labels on 1% or 10% of the training set
    (`balanced_subset`), with Nesterov momentum, learning rate 0.05 x batch/256, no
    weight decay, random crop and flip as the only augmentation; SimCLRv2 (Section 3)
    fine-tunes from the first layer of the projection head, which `head` and
    `head_layers` reproduce. SimCLRv2 trains 60 epochs on 1% and 30 on 10% of
    ImageNet. The caller's encoder and head are not modified: the network is built
    from copies (`keras.models.clone_model` + `set_weights`).

    Args:
        encoder: a `keras.Model` mapping [0, 1] image batches to features
            `(batch, dim)` that `keras.models.clone_model` can copy (functional,
            `Sequential`, or a subclass with a complete `get_config`).
        train_data: `(images, labels)` NumPy arrays or a `tf.data.Dataset` of batches.
            With a dataset and `label_fraction < 1` the chosen subset is read into
            memory, so the dataset must yield the same examples in the same order on
            each pass (no reshuffling).
        test_data: the same, for the reported accuracy.
        label_fraction: fraction of the training labels used, in (0, 1].
        head: optional projection head to keep part of: a `keras.Model` whose layers
            form a chain (as `keras_simclr.models.projection_head` builds), or a single
            layer (used whole).
        head_layers: with a `keras.Model` head, how many of its layers to keep (1 in
            SimCLRv2), a layer being a dense layer and the normalisation and activation
            layers after it, as in `keras_simclr.models.projection_head_layers`;
            `None` keeps the whole head, 0 none of it.
        augment: optional callable applied to the [0, 1] training batches (e.g. random
            crop and flip); it replaces `preprocess` for training and must output the
            evaluation image size.
        preprocess: optional callable applied to the [0, 1] test batches (and to the
            training batches when `augment` is `None`), e.g. a centre crop.
        epochs: training epochs over the labelled subset.
        batch_size: training batch size (and feature-extraction batch size).
        learning_rate: defaults to `0.05 * batch_size / 256`, decayed with a cosine.
        optimizer: a `keras.optimizers.Optimizer` to use instead of the default SGD
            (then `learning_rate` must be `None`).
        seed: seed of the subset, the shuffling and the new head's initialisation.
        verbose: verbosity of `Model.fit`.
        dataset_name: name stored in the result.

    Returns:
        `(result, classifier)`: an `EvaluationResult` with protocol
        `"fine-tune (<fraction> labels)"`, and the fine-tuned classifier (a
        `keras.Sequential`: the encoder copy, the head layers kept, a linear layer)
        that the caller owns.

    Example:

    >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> images = np.random.rand(200, 8, 8, 1).astype("float32")
    >>> labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    >>> result, classifier = fine_tune(encoder, (images, labels), (images, labels), 0.1, epochs=2)
    """
    return _train_classifier(
        protocol=f"fine-tune ({_percent(label_fraction)} labels)",
        encoder=encoder,
        head=head,
        head_layers=head_layers,
        train_data=train_data,
        test_data=test_data,
        label_fraction=label_fraction,
        augment=augment,
        preprocess=preprocess,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        base_learning_rate=0.05,
        optimizer=optimizer,
        seed=seed,
        verbose=verbose,
        dataset_name=dataset_name,
    )


def supervised_baseline(
    encoder,
    train_data,
    test_data,
    label_fraction=1.0,
    *,
    augment=None,
    preprocess=None,
    epochs=90,
    batch_size=256,
    learning_rate=None,
    optimizer=None,
    seed=0,
    verbose=0,
    dataset_name="unnamed",
):
    """The same architecture trained from scratch with labels, for comparison.

    The paper sets its self-supervised numbers against a supervised network of the
    same architecture (Figure 1; Table 7's supervised baseline on 1% / 10% labels).
    Pass a freshly initialised encoder: a linear head is added and the whole network
    is trained with cross-entropy on `label_fraction` of the labels (a
    `balanced_subset`), SGD with Nesterov momentum 0.9 and learning rate
    0.1 x batch/256 (the usual supervised ResNet rate) with cosine decay. The
    caller's encoder is copied, not modified.

    Args:
        encoder: a `keras.Model` mapping [0, 1] image batches to features
            `(batch, dim)` that `keras.models.clone_model` can copy (functional,
            `Sequential`, or a subclass with a complete `get_config`), freshly initialised.
        train_data: `(images, labels)` NumPy arrays or a `tf.data.Dataset` of batches.
        test_data: the same, for the reported accuracy.
        label_fraction: fraction of the training labels used, in (0, 1].
        augment: optional callable applied to the [0, 1] training batches.
        preprocess: optional callable applied to the [0, 1] test batches (and to the
            training batches when `augment` is `None`).
        epochs: training epochs.
        batch_size: training batch size.
        learning_rate: defaults to `0.1 * batch_size / 256`, decayed with a cosine.
        optimizer: a `keras.optimizers.Optimizer` to use instead of the default SGD.
        seed: seed of the subset, the shuffling and the head's initialisation.
        verbose: verbosity of `Model.fit`.
        dataset_name: name stored in the result.

    Returns:
        `(result, classifier)`: an `EvaluationResult` with protocol
        `"supervised (<fraction> labels)"`, and the trained classifier (a
        `keras.Sequential`: the encoder copy and a linear layer).

    Example:

    >>> encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten()])
    >>> images = np.random.rand(200, 8, 8, 1).astype("float32")
    >>> labels = (images.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
    >>> result, classifier = supervised_baseline(
    ...     encoder, (images, labels), (images, labels), epochs=2
    ... )
    """
    return _train_classifier(
        protocol=f"supervised ({_percent(label_fraction)} labels)",
        encoder=encoder,
        head=None,
        head_layers=None,
        train_data=train_data,
        test_data=test_data,
        label_fraction=label_fraction,
        augment=augment,
        preprocess=preprocess,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        base_learning_rate=0.1,
        optimizer=optimizer,
        seed=seed,
        verbose=verbose,
        dataset_name=dataset_name,
    )


def _train_classifier(
    protocol,
    encoder,
    head,
    head_layers,
    train_data,
    test_data,
    label_fraction,
    augment,
    preprocess,
    epochs,
    batch_size,
    learning_rate,
    base_learning_rate,
    optimizer,
    seed,
    verbose,
    dataset_name,
):
    """The training loop `fine_tune` and `supervised_baseline` share."""
    start = time.perf_counter()
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            "`encoder` must be a `keras.Model` (it is copied with "
            f"`keras.models.clone_model`). Received: encoder of type "
            f"{type(encoder).__name__}"
        )
    train_data = _check_data(train_data, "train_data")
    test_data = _check_data(test_data, "test_data")
    checks.fraction("label_fraction", label_fraction)
    checks.positive_int("epochs", epochs)
    checks.positive_int("batch_size", batch_size)
    if optimizer is not None and learning_rate is not None:
        raise ValueError(
            "Pass either `optimizer` or `learning_rate`, not both. Received: "
            f"optimizer={optimizer!r}, learning_rate={learning_rate}"
        )
    if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            "`optimizer` must be a `keras.optimizers.Optimizer` instance. Received: "
            f"optimizer of type {type(optimizer).__name__}"
        )
    head_sources = _head_layers(head, head_layers)

    all_labels = _labels_of(train_data)
    num_classes = int(all_labels.max()) + 1
    if np.unique(all_labels).size < 2:
        raise ValueError("`train_data` must hold at least 2 classes for a classifier.")
    indices = balanced_subset(all_labels, label_fraction, seed)
    steps_per_epoch = math.ceil(indices.size / batch_size)
    dataset = _training_dataset(
        train_data, all_labels, indices, label_fraction, augment, preprocess, batch_size, seed
    )

    encoder_copy = keras.models.clone_model(encoder)
    encoder_copy.trainable = True
    head_copies = [layer.__class__.from_config(layer.get_config()) for layer in head_sources]
    classifier = keras.Sequential(
        [
            encoder_copy,
            *head_copies,
            keras.layers.Dense(
                num_classes,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
                # Logits in float32 under a mixed-precision policy.
                dtype="float32",
                name="classifier",
            ),
        ]
    )
    sample_images, _ = next(iter(dataset))
    classifier(sample_images, training=False)
    if not encoder.built:
        encoder(sample_images, training=False)
    encoder_copy.set_weights(encoder.get_weights())
    for source, copy in zip(head_sources, head_copies):
        if source.weights:
            copy.set_weights(source.get_weights())
        copy.trainable = True

    if optimizer is None:
        learning_rate = _default_learning_rate(learning_rate, base_learning_rate, batch_size)
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=epochs * steps_per_epoch
        )
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    classifier.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # The datasets are shuffled (seeded) by `_training_dataset`.
    history = classifier.fit(dataset, epochs=epochs, verbose=verbose, shuffle=False)

    logits, test_y = _extract(classifier, test_data, preprocess, batch_size)
    result = EvaluationResult(
        dataset=dataset_name,
        protocol=protocol,
        accuracy=_top_k_accuracy(logits, test_y, 1),
        top5_accuracy=_top_k_accuracy(logits, test_y, 5),
        num_train=int(indices.size),
        num_test=int(test_y.size),
        epochs=epochs,
        seconds=time.perf_counter() - start,
        details={
            "label_fraction": label_fraction,
            "head_layers": sum(_is_dense(layer) for layer in head_copies),
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "history": history.history,
        },
    )
    return result, classifier


def _head_layers(head, head_layers):
    """The head layers to copy: the first `head_layers` dense blocks of `head`."""
    if head is None:
        return []
    if not isinstance(head, keras.layers.Layer):
        raise ValueError(
            "`head` must be a `keras.Model` or a `keras.layers.Layer`. Received: "
            f"head of type {type(head).__name__}"
        )
    if not isinstance(head, keras.Model):
        return [head]
    layers = [layer for layer in head.layers if not isinstance(layer, keras.layers.InputLayer)]
    if head_layers is None:
        return layers
    dense = [i for i, layer in enumerate(layers) if _is_dense(layer)]
    if (
        isinstance(head_layers, bool)
        or not isinstance(head_layers, (int, np.integer))
        or not 0 <= head_layers <= len(dense)
    ):
        raise ValueError(
            f"`head_layers` must be an integer in [0, {len(dense)}] (the number of dense "
            f"layers of `head`) or None for the whole head. "
            f"Received: head_layers={head_layers!r}"
        )
    # Layer k ends where dense layer k + 1 starts, as `projection_head_layers` cuts.
    end = dense[head_layers] if head_layers < len(dense) else len(layers)
    return layers[:end]


def _is_dense(layer):
    return isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))


def _training_dataset(
    data, all_labels, indices, fraction, augment, preprocess, batch_size, seed
):
    steps_per_epoch = math.ceil(indices.size / batch_size)
    transform = augment if augment is not None else preprocess

    # Graph code already (TensorFlow ops: tf.data runs them whatever Keras' backend
    # is); AutoGraph would warn about the backend's import on JAX.
    @tf.autograph.experimental.do_not_convert
    def unit_float(images):
        return tf.cast(to_unit_float(images, backend="tensorflow"), tf.float32)

    def prepare(images, labels):
        images = unit_float(images)
        if transform is not None:
            images = transform(images)
        return images, labels

    if isinstance(data, tf.data.Dataset) and fraction == 1.0:
        # Streamed: the full training set need not fit in memory. The count of the
        # labels pass tells `fit` the epoch length, which `unbatch` hides.
        dataset = (
            data.unbatch()
            .shuffle(16 * batch_size, seed=seed)
            .batch(batch_size)
            .apply(tf.data.experimental.assert_cardinality(steps_per_epoch))
        )
    else:
        images, labels = _gather(data, all_labels, indices)
        dataset = (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(labels.size, seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
        )
    return dataset.map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).prefetch(tf.data.AUTOTUNE)


def _gather(data, all_labels, indices):
    """`(images[indices], labels[indices])` as NumPy arrays, for arrays or a dataset."""
    if not isinstance(data, tf.data.Dataset):
        images, labels = data
        return np.asarray(images)[indices], labels[indices]
    keep = np.zeros(all_labels.size, bool)
    keep[indices] = True
    images, offset = [], 0
    for batch_images, batch_labels in _batches(data, None):
        stop = offset + batch_labels.size
        if stop > all_labels.size or not np.array_equal(batch_labels, all_labels[offset:stop]):
            raise ValueError(
                "`train_data` yielded different examples on a second pass; the labelled "
                "subset cannot be selected. Pass a dataset without reshuffling (or "
                "`(images, labels)` arrays)."
            )
        images.append(np.asarray(batch_images)[keep[offset:stop]])
        offset = stop
    return np.concatenate(images), all_labels[indices]




def _percent(fraction):
    return f"{100 * fraction:g}%"
