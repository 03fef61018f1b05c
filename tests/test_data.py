"""Input pipelines: tfds by name (mocked), Fashion-MNIST IDX, image folders, batches."""

import os
import struct

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_simclr import augment
from keras_simclr import data
from idx_files import write_fashion_mnist
from idx_files import write_idx

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
# A 1x1 GIF89a: TensorFlow cannot encode GIFs, and the folder loader must read them.
TINY_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00"
    b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


# Helpers that write test data.


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


# Fashion-MNIST from IDX files.


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_fashion_mnist_reader_returns_the_written_arrays(tmp_path, compress):
    arrays = write_fashion_mnist(tmp_path, compress=compress)
    for split in ("train", "test"):
        images, labels = data.load_fashion_mnist(tmp_path, split)
        assert images.dtype == np.uint8 and images.shape == (len(labels), 28, 28, 1)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(images[..., 0], arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])


def test_fashion_mnist_reader_slices_like_tfds(tmp_path):
    arrays = write_fashion_mnist(tmp_path, sizes=(10, 4))
    images, labels = data.load_fashion_mnist(tmp_path, "train[:50%]+test[-1:]")
    np.testing.assert_array_equal(
        labels, np.concatenate([arrays["train"][1][:5], arrays["test"][1][-1:]])
    )
    assert images.shape == (6, 28, 28, 1)
    assert (
        data.info("fashion_mnist", "train[:50%]+test[-1:]", tmp_path).num_examples == 6
    )


def _truncate_images(directory):
    images = np.zeros((6, 28, 28), np.uint8)
    write_idx(directory / "train-images-idx3-ubyte", images, truncate=100)


def _swap_magic(directory):
    labels = np.zeros(6, np.uint8)
    write_idx(directory / "train-labels-idx1-ubyte", labels, magic=2051)


def _delete_labels(directory):
    os.remove(directory / "train-labels-idx1-ubyte.gz")


def _fewer_labels(directory):
    write_idx(directory / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))


def _label_out_of_range(directory):
    write_idx(directory / "train-labels-idx1-ubyte", np.full(6, 10, np.uint8))


def _wrong_image_size(directory):
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((6, 27, 28), np.uint8))


def _cut_gzip_stream(directory):
    path = directory / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])


def _not_gzip(directory):
    (directory / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data")


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (_truncate_images, ValueError, r"truncated or corrupt"),
        (_swap_magic, ValueError, r"magic number 2051.*labels file has 2049"),
        (_delete_labels, FileNotFoundError, r"train-labels-idx1-ubyte\.gz.*missing"),
        (_fewer_labels, ValueError, r"6 images but .* 5 labels"),
        (_label_out_of_range, ValueError, r"label 10.*0-9"),
        (_wrong_image_size, ValueError, r"28x28"),
        (_cut_gzip_stream, ValueError, r"corrupt or truncated"),
        (_not_gzip, ValueError, r"corrupt or truncated"),
    ],
)
def test_fashion_mnist_reader_rejects_damaged_files(tmp_path, damage, error, message):
    write_fashion_mnist(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=message) as caught:
        data.load_fashion_mnist(tmp_path, "train")
    assert "dataset-fashion-mnist" in str(caught.value)  # says how to fix it
    # The other split's files are intact and still load.
    assert data.load_fashion_mnist(tmp_path, "test")[0].shape == (4, 28, 28, 1)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda d: data.load_fashion_mnist(d / "missing"), FileNotFoundError, "exist"),
        (lambda d: data.load_fashion_mnist(d, "validation"), ValueError, "'test'"),
        (lambda d: data.load_fashion_mnist(d, "train[:abc]"), ValueError, "parse"),
        (
            lambda d: data.load("fashion_mnist", data_dir=d / "x"),
            FileNotFoundError,
            "x'",
        ),
    ],
)
def test_fashion_mnist_bad_arguments(tmp_path, call, error, message):
    write_fashion_mnist(tmp_path)
    with pytest.raises(error, match=message):
        call(tmp_path)


@pytest.mark.skipif(
    not os.path.isdir(FASHION_MNIST_DIR), reason="Debian dataset-fashion-mnist absent"
)
def test_real_fashion_mnist_files_match_tfds_splits():
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = data.load_fashion_mnist(split=split)
        assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
        assert labels.dtype == np.int64
        # tfds' fashion_mnist is balanced: 6000 / 1000 examples of each of 10 classes.
        np.testing.assert_array_equal(np.bincount(labels), np.full(10, n // 10))
        assert 0 < images.mean() < 255
    described = data.info("fashion_mnist", "test")
    assert described == data.DatasetInfo(
        num_examples=10_000,
        num_classes=10,
        image_shape=(28, 28, 1),
        labelled=True,
        class_names=tuple(tfds.builder("fashion_mnist").info.features["label"].names),
    )
    loaded = data.load("fashion_mnist", "test[:3]")
    assert [int(label) for _, label in loaded] == labels[:3].tolist()


def test_load_fashion_mnist_from_data_dir_as_dataset(tmp_path):
    arrays = write_fashion_mnist(tmp_path)
    dataset = data.load("fashion_mnist", "train", data_dir=tmp_path)
    assert dataset.element_spec == (
        tf.TensorSpec((28, 28, 1), tf.uint8),
        tf.TensorSpec((), tf.int64),
    )
    images = np.stack(images_of(dataset))
    np.testing.assert_array_equal(images[..., 0], arrays["train"][0])
    resized = data.load("fashion_mnist", "train", data_dir=tmp_path, image_size=32)
    assert resized.element_spec[0].shape == (32, 32, 1)
    first = next(iter(resized))[0].numpy()
    np.testing.assert_array_equal(
        first, data._resize_image(tf.constant(images[0]), (32, 32)).numpy()
    )
    only_images = data.load("fashion_mnist", "test", data_dir=tmp_path, labels=False)
    assert only_images.element_spec == tf.TensorSpec((28, 28, 1), tf.uint8)


# TensorFlow Datasets, mocked (no network here).


@pytest.mark.parametrize(
    "name, split, image_shape, num_classes",
    [
        ("cifar10", "train", (32, 32, 3), 10),
        ("cifar100", "test", (32, 32, 3), 100),
        ("stl10", "train", (96, 96, 3), 10),
        ("stl10", "unlabelled", (96, 96, 3), None),
        ("tfds:fashion_mnist", "test", (28, 28, 1), 10),
    ],
)
def test_tfds_datasets_by_name(tmp_path, name, split, image_shape, num_classes):
    with tfds.testing.mock_data(num_examples=7):
        dataset = data.load(name, split, data_dir=tmp_path)
        described = data.info(name, split, data_dir=tmp_path)
    image_spec = tf.TensorSpec(image_shape, tf.uint8)
    if num_classes is None:
        assert dataset.element_spec == image_spec
    else:
        assert dataset.element_spec == (image_spec, tf.TensorSpec((), tf.int64))
        labels = [int(label) for _, label in dataset]
        assert all(0 <= label < num_classes for label in labels)
    assert len(images_of(dataset)) == 7
    assert described.num_examples == 7  # the mocked split's size, not tfds' real one
    assert described.num_classes == num_classes
    assert described.labelled == (num_classes is not None)
    assert described.image_shape == image_shape


def test_fashion_mnist_falls_back_to_tfds_without_local_files(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with tfds.testing.mock_data(num_examples=5):
        dataset = data.load("fashion_mnist", "train")
        assert data.info("fashion_mnist").num_examples == 5
    assert len(images_of(dataset)) == 5
    assert dataset.element_spec[0].shape == (28, 28, 1)


def test_tfds_variable_size_images_are_resized_for_batching(tmp_path):
    with tfds.testing.mock_data(num_examples=4):
        raw = data.load("imagenet2012", "validation", data_dir=tmp_path)
        resized = data.load("imagenet2012", "validation", tmp_path, image_size=24)
        assert data.info(
            "imagenet2012", "validation", tmp_path, image_size=24
        ).image_shape == (
            24,
            24,
            3,
        )
    with pytest.raises(ValueError, match="different sizes.*image_size="):
        data.pretraining_dataset(raw, 2)
    batch = next(iter(data.pretraining_dataset(resized, 2, repeat=False)))
    assert batch[0].shape == (2, 24, 24, 3) and batch[0].dtype == tf.uint8


def test_tfds_labels_argument(tmp_path):
    with tfds.testing.mock_data(num_examples=3):
        dropped = data.load("cifar10", "train", tmp_path, labels=False)
        with pytest.raises(ValueError, match="labels=True.*has no labels"):
            data.load("stl10", "unlabelled", tmp_path, labels=True)
    assert dropped.element_spec == tf.TensorSpec((32, 32, 3), tf.uint8)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"name": "cifar11"}, ValueError, r"Unknown data set 'cifar11'.*cifar10"),
        ({"name": ""}, ValueError, r"`name` must be"),
        (
            {"name": "cifar10", "data_dir": "/nonexistent"},
            FileNotFoundError,
            r"data_dir",
        ),
        ({"name": "cifar10", "image_size": 0}, ValueError, r"image_size=0"),
        (
            {"name": "cifar10", "image_size": (3, 2, 1)},
            ValueError,
            r"\(height, width\)",
        ),
        ({"name": "cifar10", "labels": "yes"}, ValueError, r"labels='yes'"),
        ({"name": "folder:/nonexistent"}, FileNotFoundError, r"does not exist"),
        ({"name": "folder:"}, ValueError, r"path after 'folder:'"),
    ],
)
def test_load_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        data.load(**kwargs)


# Resizing.


@pytest.mark.parametrize(
    "shape, image_size", [((60, 20), 10), ((20, 60), 10), ((40, 40), (10, 20))]
)
def test_resize_keeps_the_central_window(shape, image_size):
    """Only the centred window of the target aspect ratio may reach the output."""
    height, width = shape
    target = (image_size, image_size) if isinstance(image_size, int) else image_size
    image = np.full((height, width, 3), 255, np.uint8)
    crop_h = min(height, round(width * target[0] / target[1]))
    crop_w = min(width, round(height * target[1] / target[0]))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    image[top : top + crop_h, left : left + crop_w] = 100
    out = data._resize_image(tf.constant(image), target).numpy()
    assert out.shape == (*target, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, 100)
    # A batch of images of one size goes through the same crop.
    batch = np.stack([image, 255 - image])
    batch_out = data._resize_image(tf.constant(batch), target).numpy()
    np.testing.assert_array_equal(batch_out[0], out)
    np.testing.assert_array_equal(batch_out[1], 155)


def test_resize_upsamples_small_images_and_rounds():
    image = np.arange(4 * 4 * 1, dtype=np.uint8).reshape(4, 4, 1) * 10
    out = data._resize_image(tf.constant(image), (8, 8)).numpy()
    assert out.shape == (8, 8, 1)
    assert out.min() >= image.min() and out.max() <= image.max()
    # Each output pixel sits between its neighbours: the mean is preserved.
    assert abs(out.astype(float).mean() - image.mean()) < 1.0


# A folder of images.


def make_labelled_folder(root):
    files = {
        "cat/a.png": (10, 20),
        "cat/nested/deeper/b.JPG": (33, 17),
        "cat/c.bmp": (7, 9),
        "dog/d.jpeg": (40, 40),
        "dog/e.gif": (1, 1),
        "dog/f.png": (5, 50),
    }
    for i, (name, (h, w)) in enumerate(files.items()):
        write_image(root / name, h, w, seed=i)
    return files


def test_folder_labelled_by_first_level_subfolder(tmp_path):
    make_labelled_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / ".hidden.png").write_bytes(b"junk")
    dataset = data.load(f"folder:{tmp_path}", image_size=12)
    assert dataset.element_spec == (
        tf.TensorSpec((12, 12, 3), tf.uint8),
        tf.TensorSpec((), tf.int64),
    )
    labels = sorted(int(label) for _, label in dataset)
    assert labels == [0, 0, 0, 1, 1, 1]
    described = data.info(f"folder:{tmp_path}", image_size=12)
    assert described == data.DatasetInfo(6, 2, (12, 12, 3), True, ("cat", "dog"))


def test_folder_slice_is_labelled_like_its_split(tmp_path):
    make_labelled_folder(tmp_path)
    one = data.load(f"folder:{tmp_path}", "train[:1]", image_size=4)
    assert isinstance(one.element_spec, tuple)
    assert data.info(f"folder:{tmp_path}", "train[:1]").num_classes == 2


def test_folder_symlink_cycle_is_walked_once(tmp_path):
    make_labelled_folder(tmp_path)
    os.symlink(tmp_path, tmp_path / "cat" / "loop")
    assert data.info(f"folder:{tmp_path}").num_examples == 6


def test_folder_images_match_decoded_files(tmp_path):
    image = write_image(tmp_path / "x" / "only.png", 8, 8)
    write_image(tmp_path / "y.png", 8, 8)
    dataset = data.load(f"folder:{tmp_path}", image_size=8, labels="auto")
    assert dataset.element_spec == tf.TensorSpec((8, 8, 3), tf.uint8)  # unlabelled
    assert any(np.array_equal(found, image) for found in images_of(dataset))


def test_folder_unlabelled_when_images_lie_in_the_root(tmp_path):
    make_labelled_folder(tmp_path)
    write_image(tmp_path / "loose.png", 6, 6)
    dataset = data.load(f"folder:{tmp_path}", image_size=8)
    assert dataset.element_spec == tf.TensorSpec((8, 8, 3), tf.uint8)
    assert len(images_of(dataset)) == 7
    with pytest.raises(ValueError, match="1 image.*directly in"):
        data.load(f"folder:{tmp_path}", image_size=8, labels=True)


def test_folder_labels_false_and_grayscale_files(tmp_path):
    make_labelled_folder(tmp_path)
    gray = np.arange(25, dtype=np.uint8).reshape(5, 5, 1)
    (tmp_path / "cat" / "gray.png").write_bytes(tf.io.encode_png(gray).numpy())
    dataset = data.load(f"folder:{tmp_path}", image_size=5, labels=False)
    assert dataset.element_spec == tf.TensorSpec((5, 5, 3), tf.uint8)
    images = images_of(dataset)
    assert len(images) == 7
    assert any(np.array_equal(image, np.repeat(gray, 3, axis=-1)) for image in images)


def test_folder_skips_corrupt_and_unreadable_files_with_a_warning(tmp_path):
    make_labelled_folder(tmp_path)
    good = tf.io.encode_jpeg(np.zeros((16, 16, 3), np.uint8)).numpy()
    (tmp_path / "cat" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "dog" / "random.png").write_bytes(os.urandom(300))
    (tmp_path / "dog" / "empty.jpg").write_bytes(b"")
    os.symlink(tmp_path / "gone.png", tmp_path / "cat" / "dangling.png")
    with pytest.warns(UserWarning, match="Skipped 4 of 10 image files") as caught:
        dataset = data.load(f"folder:{tmp_path}", image_size=8)
    message = str(caught[0].message)
    for name in ("truncated.jpg", "random.png", "empty.jpg", "dangling.png"):
        assert name in message
    assert "Invalid JPEG data" in message and "No such file" in message  # reasons
    assert sorted(int(label) for _, label in dataset) == [0, 0, 0, 1, 1, 1]
    with pytest.warns(UserWarning, match="Skipped 4 of 10"):
        assert data.info(f"folder:{tmp_path}").num_examples == 6


def test_folder_file_broken_after_loading_does_not_end_the_epoch(tmp_path):
    for i in range(5):
        write_image(tmp_path / f"{i}.png", 6, 6, seed=i)
    dataset = data.load(f"folder:{tmp_path}", image_size=6)
    (tmp_path / "2.png").write_bytes(b"broken later")
    assert len(images_of(dataset)) == 4
    # The per-process cache of decode checks notices the change.
    with pytest.warns(UserWarning, match=r"Skipped 1 of 5 .*2\.png"):
        assert data.info(f"folder:{tmp_path}").num_examples == 4


def test_folder_split_directories_share_class_indices(tmp_path):
    write_image(tmp_path / "train" / "ant" / "1.png", 4, 4, value=1)
    write_image(tmp_path / "train" / "cow" / "2.png", 4, 4, value=2)
    write_image(tmp_path / "test" / "ant" / "3.png", 4, 4, value=1)
    write_image(tmp_path / "test" / "bee" / "4.png", 4, 4, value=3)
    write_image(tmp_path / "test" / "cow" / "5.png", 4, 4, value=2)
    expected_class = {1: 0, 3: 1, 2: 2}  # ant, bee, cow: the union, sorted
    for split, count in (("train", 2), ("test", 3), ("train+test", 5)):
        pairs = [
            (int(i[0, 0, 0]), int(c))
            for i, c in data.load(f"folder:{tmp_path}", split, image_size=4)
        ]
        assert len(pairs) == count
        assert all(expected_class[value] == label for value, label in pairs)
    assert data.info(f"folder:{tmp_path}", "test").class_names == ("ant", "bee", "cow")
    with pytest.raises(ValueError, match="Available splits: train"):
        data.load(f"folder:{tmp_path / 'train'}", "validation", image_size=4)


def test_folder_slices_are_disjoint_and_cover_the_folder(tmp_path):
    for i in range(10):
        write_image(tmp_path / f"{i}.png", 3, 3, value=i)
    name = f"folder:{tmp_path}"

    def values(split):
        return [
            int(image[0, 0, 0])
            for image in images_of(data.load(name, split, image_size=3))
        ]

    head, tail = values("train[:70%]"), values("train[70%:]")
    assert len(head) == 7 and len(tail) == 3
    assert sorted(head + tail) == list(range(10))
    assert data.info(name, "train[70%:]").num_examples == 3


def test_folder_shuffle_files_is_seeded(tmp_path):
    for i in range(12):
        write_image(tmp_path / f"{i:02d}.png", 3, 3, value=i)
    name = f"folder:{tmp_path}"

    def order(**kwargs):
        dataset = data.load(name, image_size=3, **kwargs)
        return [int(image[0, 0, 0]) for image in images_of(dataset)]

    fixed = order()
    assert fixed == order()
    assert order(shuffle_files=True, seed=3) == order(shuffle_files=True, seed=3)
    assert order(shuffle_files=True, seed=3) != order(shuffle_files=True, seed=4)
    assert sorted(order(shuffle_files=True, seed=3)) == sorted(fixed)


def test_folder_without_image_size_keeps_every_image_at_full_resolution(tmp_path):
    files = make_labelled_folder(tmp_path)
    dataset = data.load(f"folder:{tmp_path}")
    assert dataset.element_spec[0] == tf.TensorSpec((None, None, 3), tf.uint8)
    shapes = sorted(image.shape[:2] for image in images_of(dataset))
    assert shapes == sorted(files.values())
    assert data.info(f"folder:{tmp_path}").image_shape == (None, None, 3)


def test_folder_without_images_is_refused(tmp_path):
    with pytest.raises(ValueError, match="No readable image"):
        data.load(f"folder:{tmp_path}", image_size=8)


# Pretraining batches.


def _flip_views(seed):
    flip = keras.layers.RandomFlip("horizontal", seed=seed)

    def augment(images):
        return flip(tf.cast(images, tf.float32) / 255.0)

    return augment


def _asymmetric_images(n, size=4):
    """Images that change under a horizontal flip, each with a distinct first pixel."""
    images = np.zeros((n, size, size, 1), np.uint8)
    images[:, :, 0, 0] = np.arange(n)[:, None] + 1
    return images


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
@pytest.mark.parametrize("augmented", [True, False], ids=["views", "raw"])
def test_pretraining_batch_structure(labelled, augmented):
    images = _asymmetric_images(10)
    source = (images, np.arange(10) % 3) if labelled else images
    dataset = data.pretraining_dataset(
        source, 4, augment=_flip_views(0) if augmented else None, seed=1
    )
    batch = next(iter(dataset))
    assert len(batch) == (2 if labelled else 1)
    if augmented:
        view_1, view_2 = batch[0]
        for view in (view_1, view_2):
            assert view.shape == (4, 4, 4, 1) and view.dtype == tf.float32
    else:
        assert batch[0].shape == (4, 4, 4, 1) and batch[0].dtype == tf.uint8
    if labelled:
        assert batch[1].shape == (4,) and batch[1].dtype == tf.int64


def test_pretraining_epochs_are_permutations_and_batches_full():
    dataset = data.pretraining_dataset(_asymmetric_images(10), 5, seed=2)
    batches = [b[0].numpy()[:, 0, 0, 0] for b in dataset.take(6)]
    assert all(len(b) == 5 for b in batches)
    for epoch in range(3):
        assert sorted(np.concatenate(batches[2 * epoch : 2 * epoch + 2])) == list(
            range(1, 11)
        )
    assert not all(np.array_equal(batches[0], b) for b in batches[2::2])  # reshuffled
    finite = data.pretraining_dataset(_asymmetric_images(10), 4, repeat=False)
    assert [b[0].shape[0] for b in finite] == [4, 4]  # the remainder of 2 is dropped


def test_pretraining_views_are_random_per_example_and_per_view():
    images = _asymmetric_images(64)
    dataset = data.pretraining_dataset(images, 64, augment=_flip_views(5), seed=0)
    ((view_1, view_2),) = next(iter(dataset))
    flipped_1 = view_1.numpy()[:, :, 0, 0].sum(axis=1) == 0
    flipped_2 = view_2.numpy()[:, :, 0, 0].sum(axis=1) == 0
    # p = 0.5 per example and per view: 64 draws land far from all-or-nothing.
    assert 10 < flipped_1.sum() < 54 and 10 < flipped_2.sum() < 54
    assert 5 < (flipped_1 != flipped_2).sum() < 59


def test_pretraining_same_seed_same_order_and_views():
    images = _asymmetric_images(40)

    def run(seed, layer_seed):
        dataset = data.pretraining_dataset(
            (images, np.arange(40)), 4, augment=_flip_views(layer_seed), seed=seed
        )
        return [
            np.concatenate([v1.numpy().ravel(), v2.numpy().ravel(), y.numpy()])
            for (v1, v2), y in dataset.take(40)
        ]

    first = run(seed=11, layer_seed=3)
    np.testing.assert_array_equal(first, run(seed=11, layer_seed=3))
    assert not np.array_equal(first, run(seed=12, layer_seed=3))


def test_pretraining_labels_false_and_dict_source():
    source = tf.data.Dataset.from_tensor_slices(
        {"image": _asymmetric_images(6), "label": np.arange(6, dtype=np.int32)}
    )
    with_labels = next(iter(data.pretraining_dataset(source, 3, seed=0)))
    assert with_labels[1].dtype == tf.int64
    np.testing.assert_array_equal(
        with_labels[0].numpy()[:, 0, 0, 0] - 1, with_labels[1].numpy()
    )
    without = next(iter(data.pretraining_dataset(source, 3, labels=False)))
    assert len(without) == 1


@pytest.mark.parametrize("cache", [True, "file"])
def test_pretraining_cache_keeps_order_and_reshuffles(tmp_path, cache):
    if cache == "file":
        cache = str(tmp_path / "cache")
    images = _asymmetric_images(12)

    def firsts(**kwargs):
        dataset = data.pretraining_dataset(images, 4, seed=7, **kwargs)
        return [b[0].numpy()[:, 0, 0, 0].tolist() for b in dataset.take(9)]

    cached = firsts(cache=cache)
    assert cached == firsts()
    assert cached[:3] != cached[3:6]  # epochs still differ after caching
    if isinstance(cache, str):
        assert any(name.startswith("cache") for name in os.listdir(tmp_path))


def test_pretraining_shards_by_input_pipeline():
    images = _asymmetric_images(16)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=4
        )
        dataset = data.pretraining_dataset(
            images, 8, repeat=False, seed=0, input_context=context
        )
        batches = [b[0].numpy()[:, 0, 0, 0] for b in dataset]
        assert all(len(b) == 2 for b in batches)  # per-replica batch: 8 / 4
        seen.append(np.concatenate(batches))
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(np.concatenate(seen)) == list(range(1, 17))


@pytest.mark.parametrize(
    "source, kwargs, error, message",
    [
        (
            np.zeros((4, 3, 3, 1), np.uint8),
            {"batch_size": 0},
            ValueError,
            "batch_size=0",
        ),
        (
            np.zeros((4, 3, 3, 1), np.uint8),
            {"shuffle_buffer": -1},
            ValueError,
            "shuffle_buffer=-1",
        ),
        (
            np.zeros((4, 3, 3, 1), np.uint8),
            {"augment": "flip"},
            TypeError,
            "augment='flip'",
        ),
        (np.zeros((4, 3, 3, 1), np.uint8), {"cache": 1}, TypeError, "cache=1"),
        ([1, 2, 3], {}, TypeError, "Received: list"),
        (np.zeros((4, 3), np.uint8), {}, ValueError, r"\(n, H, W, C\)"),
        (np.zeros((4, 3, 3, 1), np.int32), {}, ValueError, "dtype int32"),
        (
            (np.zeros((4, 3, 3, 1), np.uint8), np.zeros(3, int)),
            {},
            ValueError,
            "one label per image",
        ),
        (np.zeros((0, 3, 3, 1), np.uint8), {}, ValueError, "empty"),
        (
            tf.data.Dataset.from_tensor_slices(
                (np.zeros((2, 3, 3, 1)), [0, 1], [0, 1])
            ),
            {},
            ValueError,
            "3 components",
        ),
    ],
)
def test_pretraining_rejects_bad_arguments(source, kwargs, error, message):
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(error, match=message):
        data.pretraining_dataset(source, **kwargs)


def test_pretraining_with_simclr_augment():
    """The paper's augmentation on the host: float views in [0, 1], reproducible."""
    augment_module = pytest.importorskip("keras_simclr.augment")
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)

    def views():
        augment = augment_module.SimCLRAugment(32, seed=1)
        dataset = data.pretraining_dataset(images, 4, augment=augment, seed=0)
        return [np.stack(pair) for (pair,) in dataset.take(3)]

    first = views()
    view_1, view_2 = first[0]
    assert view_1.shape == (4, 32, 32, 3) and view_1.dtype == np.float32
    assert 0.0 <= view_1.min() and view_1.max() <= 1.0
    assert not np.allclose(view_1, view_2)
    np.testing.assert_array_equal(first, views())


def test_pretraining_crops_images_of_different_sizes_from_the_original():
    # 448 wide and 336 tall. Without colour changes (the grayscale preset's jitter at
    # strength 0), a view is its crop, resized, and its flip alone.
    image = np.random.default_rng(3).integers(0, 256, (336, 448, 1), dtype=np.uint8)

    def make():
        return augment.SimCLRAugment(
            (48, 64), preset="grayscale", color_jitter_strength=0.0, seed=9
        )

    source = images_of_different_sizes([image])
    dataset = data.pretraining_dataset(source, 1, augment=make(), seed=0)
    ((view_1, view_2),) = next(iter(dataset))
    # The two crops of an image are drawn as the layer draws those of a batch of two.
    drawn = make().get_random_transformation(tf.zeros((2, 336, 448, 1)))
    boxes, flips = drawn["crop"]["boxes"].numpy(), drawn["flip"].numpy()
    assert not np.array_equal(boxes[0], boxes[1])
    for view, box, flip in zip((view_1[0], view_2[0]), boxes, flips):
        expected = crop_and_resize(image, box, (48, 64))
        expected = expected[:, ::-1] if flip else expected
        np.testing.assert_allclose(view.numpy(), expected, atol=1e-5)


def test_folder_of_images_of_different_sizes_pretrains_and_evaluates(tmp_path):
    sizes = {
        "cat/a.jpg": (336, 448),
        "cat/b.png": (300, 200),
        "dog/c.png": (120, 160),
        "dog/d.png": (97, 255),
    }
    for i, (name, (height, width)) in enumerate(sizes.items()):
        write_image(tmp_path / name, height, width, seed=i)
    source = data.load(f"folder:{tmp_path}")

    def views():
        simclr = augment.SimCLRAugment(32, preset="cifar", seed=1)
        dataset = data.pretraining_dataset(source, 2, augment=simclr, seed=4)
        return [(v1.numpy(), v2.numpy(), y.numpy()) for (v1, v2), y in dataset.take(4)]

    first = views()
    for view_1, view_2, labels in first:
        assert view_1.shape == view_2.shape == (2, 32, 32, 3)
        assert view_1.dtype == np.float32 and 0 <= view_1.min() <= view_1.max() <= 1
        assert not np.allclose(view_1, view_2)
        assert set(labels) <= {0, 1}
    for a, b in zip(first, views()):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)

    # Evaluation: the central 87.5% of each original image, resized once.
    center = augment.CenterCropResize(24, 40)
    batches = list(data.evaluation_dataset(source, 3, preprocess=center))
    assert [len(labels) for _, labels in batches] == [3, 1]
    images = np.concatenate([images for images, _ in batches])
    for image, original in zip(images, images_of(source)):
        expected = reference_center_crop(original, (24, 40))
        np.testing.assert_allclose(image, expected, atol=1e-5)


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
def test_pretraining_maps_another_augment_over_images_of_different_sizes(labelled):
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in [(20, 9), (8, 30)]]
    source = images_of_different_sizes(images)
    if labelled:
        source = tf.data.Dataset.zip(source, tf.data.Dataset.range(2))
    crop = augment.RandomResizedCrop(6, 5, seed=2)
    batch = next(iter(data.pretraining_dataset(source, 2, augment=crop, seed=1)))
    view_1, view_2 = batch[0]
    assert view_1.shape == view_2.shape == (2, 6, 5, 3)
    assert not np.allclose(view_1, view_2)
    assert len(batch) == (2 if labelled else 1)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda source: data.pretraining_dataset(source, 2),
            r"different sizes \(element shape \(None, None, 3\)\).*augment=",
        ),
        (
            lambda source: data.pretraining_dataset(source, 2, augment=lambda x: x),
            r"one size.*Received views of shape \(None, None, 3\)",
        ),
        (
            lambda source: data.evaluation_dataset(
                tf.data.Dataset.zip(source, tf.data.Dataset.range(2)), 2
            ),
            r"different sizes.*preprocess=",
        ),
        (
            lambda source: data.evaluation_dataset(
                tf.data.Dataset.zip(source, tf.data.Dataset.range(2)),
                2,
                preprocess=lambda x: tf.cast(x, tf.float32),
            ),
            r"one size.*Received outputs of shape \(None, None, 3\)",
        ),
        (
            lambda source: data.pretraining_dataset(source.map(lambda x: x[..., 0]), 2),
            r"known number of channels.*Received element shape \(None, None\)",
        ),
    ],
)
def test_images_of_different_sizes_need_a_crop_to_be_batched(call, message):
    images = [np.zeros((4, 6, 3), np.uint8), np.zeros((5, 3, 3), np.uint8)]
    with pytest.raises(ValueError, match=message):
        call(images_of_different_sizes(images))


# Evaluation batches.


def test_evaluation_keeps_order_and_every_example():
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 3, 1), dtype=np.uint8)
    labels = np.arange(10)
    batches = list(data.evaluation_dataset((images, labels), 4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)
    got = np.concatenate([x for x, _ in batches])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, images / 255.0, rtol=1e-6)
    flipped = data.evaluation_dataset(
        (images, labels),
        4,
        preprocess=lambda x: tf.cast(x[:, :, ::-1], tf.float32) / 255.0,
    )
    np.testing.assert_allclose(
        np.concatenate([x for x, _ in flipped]), images[:, :, ::-1] / 255.0, rtol=1e-6
    )


def test_evaluation_needs_labels():
    with pytest.raises(ValueError, match="needs labels"):
        data.evaluation_dataset(np.zeros((4, 3, 3, 1), np.uint8), 2)


# Several replicas.


@pytest.mark.distributed
def test_two_replicas_share_the_one_device_global_batch(
    two_cpu_strategy, one_cpu_strategy
):
    images = _asymmetric_images(32)

    def first_steps(strategy, steps=3):
        dataset = data.distributed_pretraining_dataset(
            strategy, lambda: images, 8, seed=4
        )
        iterator = iter(dataset)
        out = []
        for _ in range(steps):
            (batch,) = next(iterator)
            parts = [
                p.numpy()[:, 0, 0, 0]
                for p in strategy.experimental_local_results(batch)
            ]
            out.append(parts)
        return out

    two = first_steps(two_cpu_strategy)
    one = first_steps(one_cpu_strategy)
    for replicas, single in zip(two, one):
        assert [len(part) for part in replicas] == [4, 4]
        assert sorted(np.concatenate(replicas)) == sorted(single[0])


@pytest.mark.distributed
def test_distributed_dataset_trains_with_fit(two_cpu_strategy):
    images = _asymmetric_images(16)
    labels = np.arange(16) % 2
    with two_cpu_strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((4, 4, 1)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.Flatten(),
                keras.layers.Dense(2),
            ]
        )
        model.compile(
            "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    dataset = data.distributed_pretraining_dataset(
        two_cpu_strategy, (images, labels), 8, seed=0
    )
    history = model.fit(dataset, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.distributed
def test_distributed_batch_must_divide_by_replicas(two_cpu_strategy):
    with pytest.raises(ValueError, match="batch_size=7 with 2 replicas.*e.g. 6 or 8"):
        data.distributed_pretraining_dataset(two_cpu_strategy, lambda: None, 7)


# Serialisation.


def test_dataset_info_round_trips():
    described = data.DatasetInfo(120, 3, (32, 32, 3), True, ("a", "b", "c"))
    config = keras.saving.serialize_keras_object(described)
    assert keras.saving.deserialize_keras_object(config) == described
    assert data.DatasetInfo.from_config(described.get_config()) == described
    unlabelled = data.DatasetInfo(None, None, (None, None, 3), False)
    assert data.DatasetInfo.from_config(unlabelled.get_config()) == unlabelled
