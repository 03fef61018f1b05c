"""Writes image files and builds sources for the tests of keras_simclr.data."""

import struct

import numpy as np
import tensorflow as tf

# A 1x1 GIF89a: TensorFlow cannot encode GIFs, and the folder loader must read them.
TINY_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00"
    b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def write_bmp(path, image):
    """A 24-bit bottom-up BMP, written by hand (TensorFlow has no BMP encoder)."""
    height, width, _ = image.shape
    row = width * 3
    padding = (4 - row % 4) % 4
    pixels = b"".join(
        image[y, :, ::-1].tobytes() + b"\0" * padding for y in range(height - 1, -1, -1)
    )
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack(
        "<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 0, 0, 0, 0
    )
    path.write_bytes(header + info + pixels)


def write_image(path, height, width, value=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if value is not None:
        image[...] = value
    suffix = path.suffix.lower()
    if suffix == ".png":
        path.write_bytes(tf.io.encode_png(image).numpy())
    elif suffix in (".jpg", ".jpeg"):
        path.write_bytes(tf.io.encode_jpeg(image, quality=95).numpy())
    elif suffix == ".bmp":
        write_bmp(path, image)
    elif suffix == ".gif":
        path.write_bytes(TINY_GIF)
    return image


def images_of_different_sizes(images):
    """A source whose images keep their own sizes, as a folder's do."""
    return tf.data.Dataset.from_generator(
        lambda: iter(images),
        output_signature=tf.TensorSpec((None, None, images[0].shape[-1]), tf.uint8),
    )


def crop_and_resize(image, box, size):
    """tf.image's crop of `box` (top, left, height, width) and bicubic resize of the
    `uint8` image, in [0, 1]."""
    top, left, height, width = np.asarray(box).astype(int)
    crop = tf.image.crop_to_bounding_box(image, top, left, height, width)
    return np.clip(tf.image.resize(crop, size, "bicubic").numpy() / 255.0, 0.0, 1.0)


def reference_center_crop(image, size, proportion=0.875):
    """The reference's `center_crop` (data_util.py): the central `proportion` of the
    image, cut to the output's aspect ratio, resized once."""
    (height, width), (out_h, out_w) = image.shape[:2], size
    aspect = out_w / out_h
    if aspect > width / height:
        crop_h, crop_w = round(proportion / aspect * width), round(proportion * width)
    else:
        crop_h, crop_w = round(proportion * height), round(proportion * aspect * height)
    top, left = (height - crop_h + 1) // 2, (width - crop_w + 1) // 2
    return crop_and_resize(image, (top, left, crop_h, crop_w), size)


def images_of(dataset):
    return [
        (element[0] if isinstance(element, tuple) else element).numpy()
        for element in dataset
    ]
