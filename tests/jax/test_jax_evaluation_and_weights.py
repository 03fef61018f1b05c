"""Fine-tuning, the supervised baseline and the official weights' converter on Keras'
JAX backend, with the TensorFlow suite's data and fixtures."""

import numpy as np
import pytest

import reference_checkpoints
from clusters import as_dataset
from clusters import dense_encoder
from clusters import gaussian_clusters
from keras_simclr import evaluation
from keras_simclr.models import from_reference_checkpoint
from test_convert import INPUT_SHAPE
from test_convert import assert_reference_outputs
from test_convert import outputs


@pytest.mark.parametrize("form", ["arrays", "dataset"])
@pytest.mark.parametrize("protocol", ["fine_tune", "supervised_baseline"])
def test_training_protocols_learn_on_copies(protocol, form):
    train = gaussian_clusters(1000, 4, 8, separation=10.0, seed=0)[:2]
    test = gaussian_clusters(400, 4, 8, separation=10.0, seed=1)[:2]
    encoder = dense_encoder(8)
    before = [w.copy() for w in encoder.get_weights()]
    fraction = 0.1 if protocol == "fine_tune" else 1.0
    result, classifier = getattr(evaluation, protocol)(
        encoder, as_dataset(train) if form == "dataset" else train, test,
        label_fraction=fraction, epochs=20, batch_size=32, learning_rate=0.05,
    )
    assert result.accuracy >= 0.95
    assert result.num_train == round(1000 * fraction) and result.num_test == 400
    for old, new in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(old, new)  # a copy trained, not the encoder
    assert not np.allclose(classifier.layers[0].get_weights()[0], before[0])


@pytest.mark.parametrize("name", sorted(reference_checkpoints.RELEASE_FOLDERS))
def test_converted_model_computes_what_the_reference_computes(name, tmp_path):
    _, expected = reference_checkpoints.load_fixture(name)
    path = reference_checkpoints.write_release(name, tmp_path)
    model, classifier = from_reference_checkpoint(path, input_shape=INPUT_SHAPE, classifier=True)
    images = reference_checkpoints.reference_images()
    assert_reference_outputs(outputs(model, classifier, images), expected)
