"""Draws the augmentation pictures the README shows (`docs/views_*.png`).

    python docs/make_views.py      # needs the dev extra (matplotlib, scikit-learn)

- `views_imagenet.png`: the ImageNet preset on the two photographs that ship with
  scikit-learn (`sklearn.datasets.load_sample_images`), each as a whole and as two
  square crops: the original and four views per row;
- `views_fashion_mnist.png`: the grayscale preset on eight Fashion-MNIST test images
  (the Debian package `dataset-fashion-mnist`, or TensorFlow Datasets), two views each.
"""

import os

import numpy as np

from keras_simclr import augment
from keras_simclr import data
from keras_simclr import visualization

HERE = os.path.dirname(os.path.abspath(__file__))


def photographs(size=224):
    """The two scikit-learn photographs, whole and as two crops, at `size` px."""
    import tensorflow as tf
    from sklearn.datasets import load_sample_images

    images = []
    for photo in load_sample_images().images:  # (427, 640, 3) uint8
        height, width = photo.shape[:2]
        for top, left, side in ((0, 0, None), (0, 0, height), (0, width - height, height)):
            window = photo if side is None else photo[top : top + side, left : left + side]
            resized = tf.image.resize(window, (size, size), "bicubic", antialias=True)
            images.append(np.clip(np.round(resized.numpy()), 0, 255).astype("uint8"))
    return np.stack(images)


def main():
    photos = photographs()
    path = os.path.join(HERE, "views_imagenet.png")
    visualization.plot_views(
        photos,
        augment.SimCLRAugment(224, preset="imagenet", seed=1),
        n=len(photos),
        path=path,
        num_views=4,
    )
    print("wrote", path)

    test = data.load("fashion_mnist", split="test[:8]")
    images = np.stack([image for image, _ in test.as_numpy_iterator()])
    path = os.path.join(HERE, "views_fashion_mnist.png")
    visualization.plot_views(
        images,
        augment.SimCLRAugment(28, preset="grayscale", seed=1),
        n=8,
        path=path,
        num_views=2,
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
