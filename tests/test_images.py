"""keras_simclr.images: one uint8-to-float conversion, exact, on every backend path."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_simclr.images import to_unit_float

from keras.src.utils import backend_utils

BYTES = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)


@pytest.mark.parametrize(
    "backend", [None, "tensorflow", backend_utils.DynamicBackend("tensorflow")]
)
def test_uint8_becomes_float32_divided_by_255(backend):
    result = to_unit_float(tf.constant(BYTES), backend=backend)
    assert keras.backend.standardize_dtype(result.dtype) == "float32"
    # A division, bit for bit: not a multiplication by the reciprocal.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(result), BYTES.astype(np.float32) / np.float32(255)
    )


def test_uint8_in_a_tf_data_pipeline():
    dataset = tf.data.Dataset.from_tensors(BYTES).map(
        lambda images: to_unit_float(images, backend="tensorflow")
    )
    (result,) = list(dataset.as_numpy_iterator())
    np.testing.assert_array_equal(result, BYTES.astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_float_images_are_returned_as_they_are(dtype):
    images = tf.cast(tf.constant(BYTES) / 255, dtype)
    assert to_unit_float(images) is images
    array = np.zeros((2, 2), np.float64)
    assert to_unit_float(array) is array
