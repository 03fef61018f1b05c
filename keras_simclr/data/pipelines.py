"""Batches: two-view pretraining batches, evaluation batches, and resizing.

SimCLR (Chen et al., 2020, Section 2.1 and Appendix B.9) draws a minibatch of N images,
augments each twice, and contrasts the resulting 2N views. `pretraining_dataset`
(one input pipeline), `distributed_pretraining_dataset` (one per input worker of a
`tf.distribute` strategy) and `evaluation_dataset` turn a source (what
`keras_simclr.data.load` returns, or arrays) into those batches. Images stay `uint8`
through shuffling and caching; conversion to floats happens in the augmentation or
evaluation preprocessing.
"""

import functools
import os

import numpy as np
import tensorflow as tf

from keras_simclr import augment as augmentation
from keras_simclr.images import to_unit_float
from keras_simclr import checks


def pretraining_dataset(
    source,
    batch_size,
    augment=None,
    shuffle_buffer=10_000,
    cache=False,
    repeat=True,
    seed=None,
    input_context=None,
    labels=True,
    probe_images=False,
):
    """Batches images for contrastive pretraining, optionally as two augmented views.

    SimCLR (Algorithm 1) samples a minibatch of N images and draws two augmentations
    of each; the pipeline shuffles, caches if asked, repeats, batches with
    `drop_remainder=True` (every step contrasts exactly the global batch) and then
    applies `augment` twice to each batch, so that a batch-level augmentation layer
    draws its parameters per example and independently for the two views. Without
    `augment`, the images stay `uint8` and the model augments them on the accelerator.

    Images of different sizes (a folder or ImageNet loaded without `image_size`) are
    cropped at their full resolution, as the reference implementation crops the
    decoded image (`crop_and_resize` in its `data_util.py`): the two crops of each
    image are drawn on the original and resized once, before batching, and the rest
    of `keras_simclr.augment.SimCLRAugment` (colour jitter, colour drop, blur) then
    runs on batches. Another `augment` is called on each image alone (as a batch of
    one) and must return one size. The shuffle buffer then holds full-resolution
    images.

    With a seed, the order and the views are reproducible: shuffling uses the seed
    and the augmentation runs one batch at a time (one image at a time for the
    random crops of images of different sizes), because concurrent calls would
    consume the augmentation layer's random state in a varying order (each call
    is still vectorised over the batch; crops are cut and resized concurrently).
    Without a seed, batches are augmented concurrently.

    Args:
        source: a `tf.data.Dataset` of images or `(image, label)` pairs (what
            `load()` returns; dicts with `"image"` and `"label"` keys work too), a
            NumPy array of images `(n, H, W, C)` or `(n, H, W)`, or a tuple
            `(images, labels)`. Images `uint8` or float in [0, 1], of one shape or,
            with `augment`, of different sizes (element shape `(None, None, C)`).
        batch_size: the global batch size. With `input_context` the dataset yields
            per-replica batches of `batch_size // num_replicas_in_sync`.
        augment: a callable (e.g. `keras_simclr.augment.SimCLRAugment`) mapping a
            batch of images as the source holds them to one float32 view of one
            size; `None` leaves augmentation to the model.
        shuffle_buffer: size of the shuffle buffer; 0 disables shuffling.
        cache: `True` caches the source in memory, a string caches it to that file;
            done before shuffling so that each epoch is reshuffled.
        repeat: repeat the data indefinitely (set the length with `steps_per_epoch`).
        seed: seed of the shuffling, which also makes the augmentation sequential.
        input_context: a `tf.distribute.InputContext`, as passed by
            `strategy.distribute_datasets_from_function`: the source is sharded by
            input pipeline and batched per replica.
        labels: keep the labels of a labelled source (for the online linear probe).
        probe_images: with `augment` and labels, also carry each batch's clean
            images for a probe that trains on them (`SimCLR(probe_on="images")`):
            `True` for the images as they are (one size), or a callable mapping a
            batch of them to the encoder's input (e.g.
            `keras_simclr.augment.CenterCropResize`; images of different sizes
            are each mapped alone, as a batch of one).

    Returns:
        A `tf.data.Dataset` of `((view_1, view_2), labels)` or `((view_1, view_2),)`
        with `augment` (`({"views": (view_1, view_2), "images": images}, labels)`
        with `probe_images`), of `(images, labels)` or `(images,)` without.

    Example:

    >>> train = keras_simclr.data.load("fashion_mnist")
    >>> augment = keras_simclr.augment.SimCLRAugment(32, preset="grayscale", seed=1)
    >>> ds = keras_simclr.data.pretraining_dataset(train, 256, augment=augment, seed=1)
    """
    checks.positive_int("batch_size", batch_size)
    checks.non_negative_int("shuffle_buffer", shuffle_buffer)
    if augment is not None and not callable(augment):
        raise TypeError(
            "`augment` must be a callable mapping a batch of images to one view, e.g. "
            f"keras_simclr.augment.SimCLRAugment(...). Received: augment={augment!r}"
        )
    if not isinstance(cache, (bool, str, os.PathLike)):
        raise TypeError(
            "`cache` must be True/False or a file name. Received: " f"cache={cache!r}"
        )
    dataset, labelled, sizes_differ = _as_dataset(source, "pretraining_dataset")
    clean = _probe_image_fn(probe_images, augment, labelled and labels, sizes_differ)
    if sizes_differ and augment is None:
        raise ValueError(
            "`pretraining_dataset` received images of different sizes (element "
            f"shape {_image_spec(dataset).shape}), which cannot be batched as they "
            "are. Pass augment=keras_simclr.augment.SimCLRAugment(...), which crops "
            "each image at full resolution before batching, or give the images one "
            "size with keras_simclr.data.load(..., image_size=...)."
        )
    per_replica_batch = batch_size
    if input_context is not None:
        replicas = input_context.num_replicas_in_sync
        if batch_size % replicas:
            raise ValueError(_divisibility_message(batch_size, replicas))
        per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
        dataset = dataset.shard(
            input_context.num_input_pipelines, input_context.input_pipeline_id
        )
    if labelled and not labels:
        dataset = dataset.map(_drop_label, num_parallel_calls=tf.data.AUTOTUNE)
        labelled = False
    if cache is not False:
        dataset = dataset.cache("" if cache is True else os.fspath(cache))
    if shuffle_buffer:
        dataset = dataset.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    if sizes_differ:
        if clean is not None:
            # Each image's clean copy travels with its label through the crops.
            dataset = dataset.map(
                lambda image, label: (image, clean(image[None])[0], label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        dataset = _views_of_each_image(
            dataset, augment, per_replica_batch, sequential=seed is not None
        )
        if clean is not None:
            dataset = dataset.map(
                lambda views, images, label: ({"views": views, "images": images}, label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
    elif augment is None:
        dataset = dataset.batch(per_replica_batch, drop_remainder=True)
        dataset = dataset.map(
            _as_tuple if labelled else _as_single, num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        dataset = dataset.batch(per_replica_batch, drop_remainder=True)

        def two_views(images, *label):
            views = (augment(images), augment(images))
            if clean is not None:
                return ({"views": views, "images": clean(images)}, *label)
            return (views, *label)

        dataset = dataset.map(
            two_views, num_parallel_calls=None if seed is not None else tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _probe_image_fn(probe_images, augment, labelled, sizes_differ):
    """The callable making the probe's clean images, or `None` for none."""
    if probe_images is False or probe_images is None:
        return None
    if probe_images is not True and not callable(probe_images):
        raise TypeError(
            "`probe_images` must be True/False or a callable mapping a batch of "
            "images to the encoder's input (e.g. keras_simclr.augment."
            f"CenterCropResize(...)). Received: probe_images={probe_images!r}"
        )
    if augment is None:
        raise ValueError(
            "`probe_images` carries clean images beside the views, but without "
            "`augment` the batches are the clean images already: a model with an "
            "augmenter and probe_on='images' trains its probe on them. Drop "
            "`probe_images`, or pass `augment`."
        )
    if not labelled:
        raise ValueError(
            "`probe_images` is for the online probe, which needs labels: give a "
            "labelled source with labels=True, or drop `probe_images`."
        )
    if probe_images is True:
        if sizes_differ:
            raise ValueError(
                "The images have different sizes, so they cannot be batched as "
                "clean probe images as they are. Pass probe_images=keras_simclr."
                "augment.CenterCropResize(size, size) to give them the views' size."
            )
        return lambda images: images
    return probe_images


def _views_of_each_image(dataset, augment, batch_size, sequential):
    """Batches of two views of images of different sizes, cropped one by one.

    `SimCLRAugment` draws the two crops of an image (one image at a time when
    `sequential`, so that its random streams are consumed in order), cuts and
    resizes them concurrently, and augments the rest on batches. Another `augment`
    makes each view of an image alone.
    """
    draws = None if sequential else tf.data.AUTOTUNE
    if isinstance(augment, augmentation.SimCLRAugment):
        # Graph code already, as a layer call is: AutoGraph need not convert it.
        @tf.autograph.experimental.do_not_convert
        def draw(image, *label):
            return (image, augment._draw_crops(image, 2), *label)

        @tf.autograph.experimental.do_not_convert
        def crop(image, crops, *label):
            return (augment._crop_views(image, crops), *label)

        @tf.autograph.experimental.do_not_convert
        def finish(crops, *label):
            return (tuple(augment._augment_crops(views) for views in crops), *label)

        dataset = dataset.map(draw, num_parallel_calls=draws)
        dataset = dataset.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(batch_size, drop_remainder=True)
        return dataset.map(finish, num_parallel_calls=draws)

    def views(image, *label):
        return (tuple(augment(image[None])[0] for _ in range(2)), *label)

    dataset = dataset.map(views, num_parallel_calls=draws)
    view_spec = dataset.element_spec[0][0]
    if not view_spec.shape.is_fully_defined():
        raise ValueError(
            "`augment` must map each of the images of different sizes to a view of "
            "one size, so that views can be batched. Received views of shape "
            f"{view_spec.shape}. Use a layer that crops and resizes, e.g. "
            "keras_simclr.augment.SimCLRAugment(224)."
        )
    return dataset.batch(batch_size, drop_remainder=True)


def evaluation_dataset(source, batch_size, preprocess=None):
    """Batches labelled images for evaluation, in order and keeping every example.

    The linear evaluation of Section 4 (and Appendix B.5) reads the test images once,
    with the evaluation preprocessing (a central crop, no colour augmentation) and no
    shuffling; the last batch may be smaller, so that every example is scored.
    Images of different sizes are preprocessed one by one before batching, so that a
    central crop is taken of the original image and resized once, as the reference
    implementation does (`center_crop` in its `data_util.py`).

    Args:
        source: a labelled source, as for `pretraining_dataset()`.
        batch_size: the batch size.
        preprocess: a callable (e.g. `keras_simclr.augment.CenterCropResize`) mapping
            a batch of images as the source holds them to float32 in [0, 1]. `None`
            converts `uint8` images to float32 in [0, 1]. Required for images of
            different sizes, to each of which it is applied alone (as a batch of
            one); it must then return one size.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`, images float32.

    Example:

    >>> test = keras_simclr.data.load("fashion_mnist", "test")
    >>> ds = keras_simclr.data.evaluation_dataset(test, 512)
    >>> photos = keras_simclr.data.load("folder:/data/pets", "test")
    >>> center = keras_simclr.augment.CenterCropResize(224, 224)
    >>> ds = keras_simclr.data.evaluation_dataset(photos, 256, preprocess=center)
    """
    checks.positive_int("batch_size", batch_size)
    if preprocess is not None and not callable(preprocess):
        raise TypeError(
            "`preprocess` must be a callable mapping a batch of images to float32, "
            f"e.g. keras_simclr.augment.CenterCropResize(...). Received: "
            f"preprocess={preprocess!r}"
        )
    dataset, labelled, sizes_differ = _as_dataset(source, "evaluation_dataset")
    if not labelled:
        raise ValueError(
            "`evaluation_dataset` needs labels, but the source yields images only. "
            "Load a labelled split (e.g. 'train' or 'test' rather than 'unlabelled'), "
            "or pass (images, labels)."
        )
    transform = preprocess
    if preprocess is None:
        # Graph code already: AutoGraph would warn about the backend's import on JAX.
        transform = tf.autograph.experimental.do_not_convert(
            functools.partial(to_unit_float, backend="tensorflow")
        )

    def prepare(images, class_ids):
        return tf.cast(transform(images), tf.float32), class_ids

    if sizes_differ:
        if preprocess is None:
            raise ValueError(
                "`evaluation_dataset` received images of different sizes (element "
                f"shape {_image_spec(dataset).shape}), which cannot be batched as "
                "they are. Pass preprocess=keras_simclr.augment.CenterCropResize("
                "224, 224), which crops each image at full resolution before "
                "batching, or give the images one size with "
                "keras_simclr.data.load(..., image_size=...)."
            )

        def prepare_one(image, class_id):
            return tf.cast(transform(image[None])[0], tf.float32), class_id

        dataset = dataset.map(prepare_one, num_parallel_calls=tf.data.AUTOTUNE)
        if not _image_spec(dataset).shape.is_fully_defined():
            raise ValueError(
                "`preprocess` must map each of the images of different sizes to one "
                "size, so that they can be batched. Received outputs of shape "
                f"{_image_spec(dataset).shape}. Use a layer that crops and resizes, "
                "e.g. keras_simclr.augment.CenterCropResize(224, 224)."
            )
        dataset = dataset.batch(batch_size)
    else:
        dataset = dataset.batch(batch_size).map(
            prepare, num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def distributed_pretraining_dataset(strategy, source_fn, batch_size, **kwargs):
    """Builds `pretraining_dataset()` on every input worker of a distribution strategy.

    The paper trains with a global batch split over many accelerators (Section 2.2,
    batch 4096 on 32 to 128 TPU cores); each replica receives `batch_size / replicas`
    images, and each input worker reads its own shard, through
    `strategy.distribute_datasets_from_function`.

    Args:
        strategy: a `tf.distribute.Strategy`.
        source_fn: a callable returning the source (called once per input worker, so
            each loads its data locally), or the source itself.
        batch_size: the global batch size; must be divisible by the number of replicas.
        **kwargs: the other arguments of `pretraining_dataset()` (`augment`,
            `shuffle_buffer`, `cache`, `repeat`, `seed`, `labels`).

    Returns:
        A `tf.distribute.DistributedDataset` for `model.fit()`.

    Example:

    >>> strategy = tf.distribute.MirroredStrategy()
    >>> ds = keras_simclr.data.distributed_pretraining_dataset(
    ...     strategy, lambda: keras_simclr.data.load("cifar10"), 512)
    """
    checks.positive_int("batch_size", batch_size)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(_divisibility_message(batch_size, replicas))
    if "input_context" in kwargs:
        raise TypeError(
            "`input_context` is set by the strategy; do not pass it to "
            "`distributed_pretraining_dataset`."
        )

    def dataset_fn(input_context):
        source = source_fn() if callable(source_fn) else source_fn
        return pretraining_dataset(
            source, batch_size, input_context=input_context, **kwargs
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


# Arguments.






def _divisibility_message(batch_size, replicas):
    lower = batch_size // replicas * replicas
    return (
        "`batch_size` (the global batch) must be divisible by the number of replicas, "
        f"so that every replica gets the same number of images. Received: "
        f"batch_size={batch_size} with {replicas} replicas. Use a multiple of "
        f"{replicas}, e.g. {max(lower, replicas)} or {lower + replicas}."
    )


# Resizing.


def _image_size_matches(shape, image_size):
    return image_size is not None and tuple(shape[:2]) == tuple(image_size)


def _resize_image(image, image_size):
    """Centre-crops the largest window of the target aspect ratio, then resizes.

    Cropping first is the same as resizing the shorter side and centre-cropping, but
    never resizes pixels that are then thrown away. Takes `(H, W, C)` or a batch
    `(N, H, W, C)` of images of one size.
    """
    target_height, target_width = image_size
    shape = tf.shape(image)
    height = tf.cast(shape[-3], tf.float64)
    width = tf.cast(shape[-2], tf.float64)
    target_ratio = target_height / target_width
    crop_height = tf.minimum(height, tf.round(width * target_ratio))
    crop_width = tf.minimum(width, tf.round(height / target_ratio))
    crop_height = tf.cast(tf.maximum(crop_height, 1.0), tf.int32)
    crop_width = tf.cast(tf.maximum(crop_width, 1.0), tf.int32)
    top = (shape[-3] - crop_height) // 2
    left = (shape[-2] - crop_width) // 2
    crop = image[..., top : top + crop_height, left : left + crop_width, :]
    resized = tf.image.resize(crop, image_size, method="bilinear", antialias=True)
    resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
    return tf.cast(resized, tf.uint8)


def _resize_array(images, image_size, chunk=8192):
    """Resizes an in-memory array once, instead of once per example and epoch."""
    if image_size is None or images.shape[1:3] == tuple(image_size):
        return images
    return np.concatenate(
        [
            _resize_image(tf.constant(images[i : i + chunk]), image_size).numpy()
            for i in range(0, len(images), chunk)
        ]
    )


def _resize_dataset(dataset, image_size):
    image_spec = dataset.element_spec
    if isinstance(image_spec, tuple):
        image_spec = image_spec[0]
    if image_size is None or _image_size_matches(image_spec.shape, image_size):
        return dataset

    def resize(image, *label):
        image = _resize_image(image, image_size)
        return (image, *label) if label else image

    return dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE)



# Sources for the batching pipelines.


def _as_dataset(source, caller):
    """Turns a source into an unbatched dataset of `image` or `(image, label)`."""
    if isinstance(source, tf.data.Dataset):
        dataset = source
        spec = dataset.element_spec
        if isinstance(spec, dict):
            if "image" not in spec:
                raise ValueError(
                    f"`{caller}` needs dict elements with an 'image' key. Received "
                    f"keys: {sorted(spec)}"
                )
            has_label = "label" in spec

            def from_dict(example):
                if has_label:
                    return example["image"], tf.cast(example["label"], tf.int64)
                return example["image"]

            dataset = dataset.map(from_dict, num_parallel_calls=tf.data.AUTOTUNE)
        elif isinstance(spec, tuple) and len(spec) == 1:
            dataset = dataset.map(_first, num_parallel_calls=tf.data.AUTOTUNE)
    elif isinstance(source, tuple) and len(source) == 2:
        images, class_ids = (np.asarray(array) for array in source)
        images = _check_image_array(images, caller)
        if class_ids.ndim != 1 or len(class_ids) != len(images):
            raise ValueError(
                f"`{caller}` needs one label per image. Received: "
                f"{len(images)} images and labels of shape {class_ids.shape}"
            )
        if not np.issubdtype(class_ids.dtype, np.integer):
            raise ValueError(
                f"`{caller}` needs integer class ids as labels. Received: labels of "
                f"dtype {class_ids.dtype}"
            )
        dataset = tf.data.Dataset.from_tensor_slices(
            (images, class_ids.astype(np.int64))
        )
    elif isinstance(source, np.ndarray):
        dataset = tf.data.Dataset.from_tensor_slices(_check_image_array(source, caller))
    else:
        raise TypeError(
            f"`{caller}` needs a tf.data.Dataset (e.g. from keras_simclr.data.load), "
            "a NumPy array of images or an (images, labels) tuple. Received: "
            f"{type(source).__name__}"
        )
    spec = dataset.element_spec
    labelled = isinstance(spec, tuple)
    if labelled and len(spec) != 2:
        raise ValueError(
            f"`{caller}` needs elements `image` or `(image, label)`. Received a "
            f"dataset with elements of {len(spec)} components: {spec}"
        )
    image_spec = spec[0] if labelled else spec
    shape = image_spec.shape
    if shape.rank != 3 or shape[-1] is None:
        raise ValueError(
            f"`{caller}` needs images (H, W, C) with a known number of channels C. "
            f"Received element shape {shape}. Set the shape with tf.ensure_shape, "
            "e.g. to (None, None, 3) for RGB images of different sizes."
        )
    if image_spec.dtype != tf.uint8 and not image_spec.dtype.is_floating:
        raise ValueError(
            f"`{caller}` needs uint8 images (or floats in [0, 1]). Received dtype "
            f"{image_spec.dtype.name}"
        )
    if int(dataset.cardinality()) == 0:
        raise ValueError(f"`{caller}` received an empty source.")
    return dataset, labelled, not shape.is_fully_defined()


def _image_spec(dataset):
    spec = dataset.element_spec
    return spec[0] if isinstance(spec, tuple) else spec


def _check_image_array(images, caller):
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"`{caller}` needs an array of images of shape (n, H, W, C) or (n, H, W). "
            f"Received shape {images.shape}"
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"`{caller}` needs uint8 images (or floats in [0, 1]). Received dtype "
            f"{images.dtype}"
        )
    return images


def _first(image):
    return image


def _drop_label(image, label):
    del label
    return image


def _as_tuple(images, class_ids):
    return images, class_ids


def _as_single(images):
    return (images,)
