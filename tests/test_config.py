"""`keras_simclr.config`: the job's configuration, defined once."""

import dataclasses

import pytest

from keras_simclr import config
from keras_simclr import runner


def test_every_field_has_a_section_and_help_and_config_stays_flat():
    for field in config.fields():
        assert field.metadata["section"] in config.SECTIONS, field.name
        assert field.metadata["help"], field.name
    assert sum(len(config.fields(s)) for s in config.SECTIONS) == len(config.fields())
    job = config.Config(train_batch_size=64, resnet_depth=50)
    assert job.train_batch_size == 64 and runner.Config is config.Config
    assert job.section("model")["resnet_depth"] == 50
    assert "learning_rate" in job.section("optimizer")
    # An unset field with a bound (None: the head's hidden width is h's) passes.
    assert config.Config().proj_hidden_dim is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(optimizer="sgd"), "`optimizer` must be one of ['lars', 'momentum', 'adam']. "
         "Received: optimizer='sgd'"),
        (dict(learning_rate_scaling="log"), "`learning_rate_scaling` must be one of"),
        (dict(eval_protocols=("linear", "svm")), "Received: eval_protocols='svm'"),
        (dict(train_batch_size=0), "`train_batch_size` must be >= 1. Received: train_batch_size=0"),
        (dict(cpu_devices=-1), "`cpu_devices` must be >= 0. Received: cpu_devices=-1"),
        (dict(encoder="vit"), "`encoder` must be one of ['resnet']"),
        (dict(proj_hidden_dim=0), "`proj_hidden_dim` must be >= 1. Received: proj_hidden_dim=0"),
        (dict(probe_average=1.0), "`probe_average` must be a momentum in [0, 1), e.g. "
         "--probe_average=0.98 (0: no average). Received: probe_average=1.0"),
    ],
)
def test_choices_and_bounds_come_from_the_field_metadata(kwargs, message):
    with pytest.raises(ValueError) as error:
        config.Config(**kwargs)
    assert message in str(error.value)


def test_the_runner_registries_hold_exactly_the_allowed_names():
    assert tuple(runner.OPTIMIZERS) == config.field("optimizer").metadata["choices"]
    assert tuple(runner.ENCODERS) == config.field("encoder").metadata["choices"]
    assert tuple(runner.METHODS) == config.field("method").metadata["choices"]


def test_reuse_keeps_the_job_field_definition_with_another_default():
    @dataclasses.dataclass(frozen=True)
    class Study:
        epochs: int = config.reuse("train_epochs", 5)
        optimizer: str = config.reuse("optimizer")

    epochs, optimizer = dataclasses.fields(Study)
    assert epochs.default == 5 and epochs.metadata["job_field"] == "train_epochs"
    assert epochs.metadata["help"] == config.field("train_epochs").metadata["help"]
    assert optimizer.default == config.Config().optimizer
    config.check_fields(Study())
    with pytest.raises(ValueError, match="Received: optimizer='sgd'"):
        config.check_fields(Study(optimizer="sgd"))
