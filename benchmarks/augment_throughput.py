"""Throughput of `SimCLRAugment` in tf.data against a per-example tf.image pipeline.

Prints images/s of one SimCLR view (ImageNet preset: crop + flip, colour jitter in a
random order per example, colour drop, blur) for batches of 32x32 and 224x224 RGB
images, made three ways on this machine in the same run:

- `batched`: `dataset.batch(B).map(SimCLRAugment(...))`, the layer on whole batches
  (its passes run as XLA-compiled kernels, the default `jit_compile=True`);
- `batched_parallel`: the same map with `num_parallel_calls=AUTOTUNE`, two batches
  in flight, as `keras_simclr.data.pretraining_dataset` maps batches (unseeded);
- `batched_xla`: the same map with the whole layer inside
  `tf.function(jit_compile=True)`, as in a model compiled with `jit_compile=True`:
  XLA then fuses the passes into each other and recomputes them (slow on CPU);
- `op_by_op` (with `--op-by-op`): the batched map with
  `SimCLRAugment(..., jit_compile=False)`, every operation a TensorFlow kernel of
  its own, as on the other Keras backends;
- `layer_per_image` (with `--layer-per-image`): the same layer mapped over single
  images before batching (parallel map);
- `per_example`: a straightforward `tf.image` pipeline mapped over single images
  before batching (parallel map), the way SimCLR's reference input pipeline works.

With `--mixed-sizes`, a second table times `keras_simclr.data.pretraining_dataset`
(two views per image, seeded as the job runs it) on a folder of JPEG files of
ImageNet-like sizes (375x500, 500x333, 480x640, ...), written to a temporary
directory:

- `full_resolution`: `data.load(folder)` keeps every image at its size and the two
  random crops of each are cut from the original and resized once;
- `thumbnail`: `data.load(folder, image_size=size)`, every image centre-cropped and
  shrunk to `size` first, the random crops cut from that thumbnail (the library
  before full-resolution crops);
- each with `cache=True` (the decoded images, or the thumbnails, kept in memory:
  the augmentation alone) and without it (`_decoding`: every file decoded, and
  shrunk, in every epoch, as for a data set larger than memory).

The pipelines run in alternating rounds and the median round is reported, so that
other load on the machine affects them alike. No assertions: the figures go in the
report / README.

    python benchmarks/augment_throughput.py            # 224 and 32 px, batch 256
    python benchmarks/augment_throughput.py --quick    # fewer batches, < ~60 s
    python benchmarks/augment_throughput.py --sizes 224 --mixed-sizes
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from keras_simclr import data  # noqa: E402
from keras_simclr.augment import SimCLRAugment  # noqa: E402

# (height, width) of the JPEG files of the mixed-size runs, sizes common in ImageNet.
_MIXED_SIZES = [
    (375, 500), (500, 375), (333, 500), (500, 333),
    (480, 640), (427, 640), (500, 500), (281, 500),
]


def _random_apply(function, probability, image, seed):
    return tf.cond(
        tf.random.stateless_uniform([], seed) < probability,
        lambda: function(image),
        lambda: image,
    )


def _color_jitter(image, strength, seeds):
    """Brightness, contrast, saturation, hue in a random order (reference style)."""
    factor = 0.8 * strength

    def apply(index, image):
        seed = seeds[5 + index]
        return tf.switch_case(
            index,
            [
                lambda: image
                * tf.random.stateless_uniform(
                    [], seed, max(0.0, 1 - factor), 1 + factor
                ),
                lambda: tf.image.stateless_random_contrast(
                    image, max(0.0, 1 - factor), 1 + factor, seed
                ),
                lambda: tf.image.stateless_random_saturation(
                    image, max(0.0, 1 - factor), 1 + factor, seed
                ),
                lambda: tf.image.stateless_random_hue(image, 0.2 * strength, seed),
            ],
        )

    order = tf.argsort(tf.random.stateless_uniform([4], seeds[4]))
    for step in range(4):
        image = tf.clip_by_value(apply(order[step], image), 0.0, 1.0)
    return image


def _gaussian_blur(image, seed):
    size = image.shape[0]
    radius = size // 20
    if radius == 0:
        return image
    sigma = tf.random.stateless_uniform([], seed, 0.1, 2.0)
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(taps**2) / (2.0 * sigma**2))
    kernel = kernel / tf.reduce_sum(kernel)
    vertical = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), (1, 1, 3, 1))
    horizontal = tf.reshape(vertical, (1, -1, 3, 1))
    padded = tf.pad(
        image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT"
    )
    blurred = tf.nn.depthwise_conv2d(padded, vertical, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, horizontal, [1, 1, 1, 1], "VALID")[0]


def per_example_view(image, seed, size):
    """One SimCLR view of one image with plain tf.image ops."""
    seeds = tf.random.experimental.stateless_split(seed, 12)
    image = tf.image.convert_image_dtype(image, tf.float32)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4)),
        seeds[0],
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=100,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.image.resize(tf.slice(image, begin, crop_size), (size, size), "bicubic")
    image = tf.clip_by_value(image, 0.0, 1.0)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    image = _random_apply(lambda x: _color_jitter(x, 1.0, seeds), 0.8, image, seeds[2])
    image = _random_apply(
        lambda x: tf.tile(tf.image.rgb_to_grayscale(x), (1, 1, 3)), 0.2, image, seeds[3]
    )
    image = _random_apply(lambda x: _gaussian_blur(x, seeds[10]), 0.5, image, seeds[11])
    return tf.clip_by_value(image, 0.0, 1.0)


def _pipelines(size, batch_size, layer_per_image=False, op_by_op=False):
    pool = tf.random.stateless_uniform(
        (batch_size, size, size, 3), (0, size), maxval=256, dtype=tf.int32
    )
    images = tf.data.Dataset.from_tensor_slices(tf.cast(pool, tf.uint8)).repeat()
    augment = SimCLRAugment(size, preset="imagenet", seed=0)
    compiled = tf.function(
        lambda batch: augment(batch, training=True), jit_compile=True
    )
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    autotune = tf.data.AUTOTUNE
    # No prefetch: a buffer filled in the background would be timed as free.
    pipelines = {
        "batched": images.batch(batch_size).map(augment),
        # As keras_simclr.data.pretraining_dataset maps batches without a seed.
        "batched_parallel": images.batch(batch_size).map(augment, autotune),
        "batched_xla": images.batch(batch_size).map(compiled),
        "per_example": tf.data.Dataset.zip(images, seeds)
        .map(lambda image, seed: per_example_view(image, seed, size), autotune)
        .batch(batch_size),
    }
    if op_by_op:
        uncompiled = SimCLRAugment(size, preset="imagenet", seed=0, jit_compile=False)
        pipelines["op_by_op"] = images.batch(batch_size).map(uncompiled)
    if layer_per_image:
        single = SimCLRAugment(size, preset="imagenet", seed=0)
        pipelines["layer_per_image"] = images.map(single, autotune).batch(batch_size)
    return pipelines


def write_mixed_size_folder(directory, count, seed=0):
    """`count` JPEG files of the `_MIXED_SIZES`, smooth like photographs."""
    for index in range(count):
        height, width = _MIXED_SIZES[index % len(_MIXED_SIZES)]
        coarse = tf.random.stateless_uniform((6, 8, 3), (seed, index), maxval=255.0)
        image = tf.image.resize(coarse, (height, width), "bicubic")
        image += tf.random.stateless_normal((height, width, 3), (seed, ~index), 8.0)
        image = tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8)
        path = os.path.join(directory, f"{index:04d}.jpg")
        tf.io.write_file(path, tf.io.encode_jpeg(image, quality=90))


def _mixed_size_pipelines(folder, size, batch_size):
    def pipeline(image_size, cache):
        source = data.load(f"folder:{folder}", image_size=image_size)
        augment = SimCLRAugment(size, preset="imagenet", seed=0)
        return data.pretraining_dataset(
            source, batch_size, augment=augment, shuffle_buffer=batch_size,
            cache=cache, seed=0,
        )

    return {
        "full_resolution": pipeline(None, True),
        "thumbnail": pipeline(size, True),
        "full_resolution_decoding": pipeline(None, False),
        "thumbnail_decoding": pipeline(size, False),
    }


def measure(
    size,
    batch_size,
    batches,
    rounds,
    layer_per_image=False,
    op_by_op=False,
    mixed_sizes_folder=None,
):
    """Median images/s of every pipeline over `rounds` alternating rounds.

    Each round opens a fresh iterator per pipeline and closes it before the next
    pipeline runs, so that no pipeline computes in the background of another. With
    `mixed_sizes_folder` (a folder of `batch_size` images from
    `write_mixed_size_folder`), the mixed-size pipelines run instead, and images/s
    count source images, each made into two views.
    """
    if mixed_sizes_folder is None:
        pipelines = _pipelines(size, batch_size, layer_per_image, op_by_op)
    else:
        pipelines = _mixed_size_pipelines(mixed_sizes_folder, size, batch_size)
    rates = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, dataset in pipelines.items():
            iterator = iter(dataset)
            next(iterator)  # tracing / XLA compilation in the first round, then warm-up
            start = time.perf_counter()
            for _ in range(batches):
                next(iterator)
            rates[name].append(batches * batch_size / (time.perf_counter() - start))
            del iterator
    return {name: statistics.median(values) for name, values in rates.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and rounds")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 32])
    parser.add_argument(
        "--layer-per-image", action="store_true", help="also map the layer per image"
    )
    parser.add_argument(
        "--op-by-op",
        action="store_true",
        help="also map the layer with jit_compile=False",
    )
    parser.add_argument(
        "--mixed-sizes",
        action="store_true",
        help="also time pretraining_dataset on JPEG files of ImageNet-like sizes, "
        "full-resolution crops against thumbnails (sizes >= 128)",
    )
    args = parser.parse_args()
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, batch {args.batch_size}, "
        "SimCLRAugment(preset='imagenet'), one view per image, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'size':>5} {'pipeline':>15} {'images/s':>10} {'vs per_example':>15}")
    for size in args.sizes:
        large = size >= 128
        batches = (2 if args.quick else 4) if large else (8 if args.quick else 20)
        rounds = 1 if args.quick else 3
        rates = measure(
            size, args.batch_size, batches, rounds, args.layer_per_image, args.op_by_op
        )
        for name, rate in rates.items():
            ratio = rate / rates["per_example"]
            print(f"{size:>5} {name:>15} {rate:>10.0f} {ratio:>14.2f}x", flush=True)
    if args.mixed_sizes:
        _print_mixed_sizes(args)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def _print_mixed_sizes(args):
    print(
        "\npretraining_dataset on JPEG files of ImageNet-like sizes, two views per "
        "image, seeded; images/s count source images"
    )
    print(f"{'size':>5} {'pipeline':>24} {'images/s':>10} {'vs thumbnail':>13}")
    folder = tempfile.mkdtemp(prefix="mixed_sizes_")
    try:
        write_mixed_size_folder(folder, args.batch_size)
        for size in (s for s in args.sizes if s >= 128):
            rates = measure(
                size, args.batch_size, 2 if args.quick else 4, 1 if args.quick else 3,
                mixed_sizes_folder=folder,
            )
            for name, rate in rates.items():
                reference = rates[name.replace("full_resolution", "thumbnail")]
                print(
                    f"{size:>5} {name:>24} {rate:>10.0f} {rate / reference:>12.2f}x",
                    flush=True,
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
