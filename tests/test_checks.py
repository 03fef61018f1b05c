"""`keras_simclr.checks` and `keras_simclr.files`: the shared helpers."""

import numpy as np
import pytest
import tensorflow as tf

from keras_simclr import checks
from keras_simclr import files


@pytest.mark.parametrize(
    "check, value, message",
    [
        (checks.positive_int, 0, "`x` must be a positive integer. Received: x=0"),
        (checks.positive_int, True, "`x` must be a positive integer. Received: x=True"),
        (checks.positive_int, 2.0, "`x` must be a positive integer. Received: x=2.0"),
        (checks.non_negative_int, -1, "`x` must be an int >= 0. Received: x=-1"),
        (checks.boolean, "yes", "`x` must be a bool. Received: x='yes'"),
        (checks.probability, 1.5, "`x` must be between 0 and 1. Received: x=1.5"),
        (checks.probability, "1", "`x` must be a number between 0 and 1. Received: x='1'"),
        (checks.fraction, 0.0, "`x` must be in (0, 1]. Received: x=0.0"),
    ],
)
def test_checks_name_the_argument_and_the_received_value(check, value, message):
    with pytest.raises(ValueError) as error:
        check("x", value)
    assert str(error.value) == message


def test_checks_return_plain_python_values():
    assert type(checks.positive_int("x", np.int64(3))) is int
    assert checks.non_negative_int("x", 0) == 0
    assert checks.boolean("x", 1) is True
    assert checks.probability("x", 1) == 1.0 and checks.fraction("x", 1) == 1.0
    assert checks.one_of("x", "a", ("a", "b")) == "a"
    assert checks.seed(None) is None and checks.seed(np.int32(4)) == 4
    with pytest.raises(ValueError, match=r"`x` must be one of \['a'\]. Received: x='b'"):
        checks.one_of("x", "b", ("a",))
    with pytest.raises(ValueError, match="`seed` must be an integer or None"):
        checks.seed(1.5)


@pytest.mark.parametrize("content", ["text", b"\x89PNG bytes"])
def test_write_atomic_replaces_the_file_and_leaves_no_temporary(content):
    # ram:// is a TensorFlow file system like gs://: the writer must use tf.io.gfile.
    path = "ram://files-test/sub/record.json"
    files.write_atomic(path, "old")
    files.write_atomic(path, content)
    mode = "rb" if isinstance(content, bytes) else "r"
    with tf.io.gfile.GFile(path, mode) as f:
        assert f.read() == content
    assert tf.io.gfile.listdir("ram://files-test/sub") == ["record.json"]
