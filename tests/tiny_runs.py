"""A tiny finished `simclr` run on real Fashion-MNIST images, for the benchmarks' tests."""

from keras_simclr import runner
from tests.idx_files import write_real_subset


def tiny_run(tmp_path, **overrides):
    """Trains a ResNet-18 x0.125 for a few steps on 512 images; returns its model_dir."""
    (tmp_path / "fashion_mnist").mkdir()
    data_dir = write_real_subset(tmp_path / "fashion_mnist", sizes=(512, 256))
    model_dir = tmp_path / "run"
    runner.run(
        runner.Config(**{
            **dict(
                mode="train", data_dir=str(data_dir), model_dir=str(model_dir),
                train_batch_size=64, width_multiplier=0.125, proj_out_dim=16,
                eval_batch_size=256, mixed_precision="off", verbose=0, train_steps=2,
            ),
            **overrides,
        })
    )
    return model_dir
