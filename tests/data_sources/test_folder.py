"""keras_simclr.data.folder: a folder of images, labelled by sub-folder, sliced,
shuffled, with unreadable files skipped once."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import data
from keras_simclr.data import folder

from .image_files import images_of
from .image_files import write_image


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


def test_info_and_load_share_one_decode_check_per_file(tmp_path, monkeypatch):
    make_labelled_folder(tmp_path)
    (tmp_path / "dog" / "random.png").write_bytes(os.urandom(300))
    with pytest.warns(UserWarning, match="Skipped 1 of 7"):
        described = data.info(f"folder:{tmp_path}")
    # info() checked every file into keras_simclr.data.folder's cache, the one cache
    # of the package; load() finds them there and decodes none again to check it.
    keys = [folder._file_key(path) for path in folder._image_files(str(tmp_path))]
    assert len(keys) == 7
    assert all(hash(key) in folder._GOOD_FILES or key in folder._BAD_FILES for key in keys)
    checked = []
    monkeypatch.setattr(folder, "_decode_error", checked.append)
    with pytest.warns(UserWarning, match="Skipped 1 of 7"):
        dataset = data.load(f"folder:{tmp_path}")
    assert checked == []
    assert len(images_of(dataset)) == described.num_examples == 6


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
