"""Fine-tuning, the supervised baseline and the official weights' converter on Keras'
JAX backend, with the TensorFlow suite's data and fixtures."""

import pytest

import reference_checkpoints
from evaluation.test_finetune import assert_training_protocol_learns_on_a_copy
from keras_simclr.models import from_reference_checkpoint
from test_convert import INPUT_SHAPE
from test_convert import assert_reference_outputs
from test_convert import outputs


@pytest.mark.parametrize("form", ["arrays", "dataset"])
@pytest.mark.parametrize("protocol", ["fine_tune", "supervised_baseline"])
def test_training_protocols_learn_on_copies(protocol, form):
    assert_training_protocol_learns_on_a_copy(protocol, form)


@pytest.mark.parametrize("name", sorted(reference_checkpoints.RELEASE_FOLDERS))
def test_converted_model_computes_what_the_reference_computes(name, tmp_path):
    _, expected = reference_checkpoints.load_fixture(name)
    path = reference_checkpoints.write_release(name, tmp_path)
    model, classifier = from_reference_checkpoint(path, input_shape=INPUT_SHAPE, classifier=True)
    images = reference_checkpoints.reference_images()
    assert_reference_outputs(outputs(model, classifier, images), expected)
