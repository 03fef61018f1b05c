"""The argument checks of the public functions and layers, one of each.

Every check takes `(name, value)`, returns the value in its plain Python type, and
raises a `ValueError` whose message names the argument and what was received
(``"`batch_size` must be a positive integer. Received: batch_size=0"``), as Keras'
own layers do.
"""

import numbers


def positive_int(name, value):
    """`value` as an `int` >= 1 (NumPy integers too; not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def non_negative_int(name, value):
    """`value` as an `int` >= 0 (NumPy integers too; not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={value!r}")
    return int(value)


def boolean(name, value):
    """`value` as a `bool` (True, False, or 1 and 0)."""
    if value not in (True, False):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


def probability(name, value):
    """`value` as a `float` in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"`{name}` must be a number between 0 and 1. Received: {name}={value!r}"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be between 0 and 1. Received: {name}={value}")
    return float(value)


def fraction(name, value):
    """`value` as a `float` in (0, 1]: a share of the data, never none of it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value <= 1.0:
        raise ValueError(f"`{name}` must be in (0, 1]. Received: {name}={value}")
    return float(value)


def one_of(name, value, allowed):
    """`value`, one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}")
    return value


def seed(value):
    """`value` as an `int` seed, or `None`."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ValueError(f"`seed` must be an integer or None. Received: seed={value!r}")
    return None if value is None else int(value)
