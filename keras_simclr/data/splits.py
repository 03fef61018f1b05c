"""Splits with TensorFlow Datasets' slicing syntax, for every source.

`"train[:90%]"`, `"train[:1000]+test"`: the sources resolve a split against their own
counts with tfds' rules (rounding of percentages included), so that a slice of a
folder or of the Fashion-MNIST files holds what tfds' slice would.
"""

import types

import tensorflow_datasets as tfds


def _parse_split(split):
    if not isinstance(split, str) or not split.strip():
        raise ValueError(
            f"`split` must be a split name such as 'train'. Received: split={split!r}"
        )
    try:
        return tfds.core.ReadInstruction.from_spec(split)
    except (ValueError, AssertionError) as error:
        raise ValueError(
            f"Could not parse the split. Received: split={split!r}. Use a name with "
            f"optional tfds slicing, e.g. 'train' or 'train[:90%]'. ({error})"
        ) from None


def _resolve_split(split, counts):
    """Resolves a tfds split spec (`"train[:10%]+test"`) against `{name: count}`.

    Returns tfds' absolute instructions: `splitname`, `from_`, `to` (None for open
    ends), so the slicing rules (rounding of percentages) are exactly tfds'.
    """
    instruction = _parse_split(split)
    infos = {base: types.SimpleNamespace(num_examples=n) for base, n in counts.items()}
    try:
        return instruction.to_absolute(infos)
    except ValueError as error:
        raise ValueError(
            f"Invalid split {split!r}: {error} Available splits: "
            f"{', '.join(sorted(counts))}."
        ) from None


def _split_names(split):
    return [part.split("[")[0].strip() for part in split.split("+")]


def _slice_length(instruction, counts):
    return len(range(counts[instruction.splitname])[instruction.from_ : instruction.to])
