"""What the data set and the configuration imply for a run: sizes and step counts.

`plan(config)` reads the data set's description (not its images) once; training,
evaluation and the official weights' evaluation all start from it.
"""

import dataclasses

from keras_simclr import data


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the data set and the configuration imply: sizes and step counts."""

    info: data.DatasetInfo
    image_size: int
    channels: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    preset: str
    requested_warmup_steps: int  # what `warmup_epochs` asks for, before the clamp

    @property
    def sizes_differ(self):
        """Whether the data set's images come in different sizes."""
        return None in self.info.image_shape[:2]


def plan(config):
    """Resolves the data set and derives image size, steps and augmentation preset."""
    info = data.info(config.dataset, config.train_split, data_dir=config.data_dir)
    height, width, channels = info.image_shape
    native = min(height, width) if height and width else None
    image_size = config.image_size or native or 224
    if native and image_size > native:
        raise ValueError(
            f"`image_size`={image_size} is larger than the {height}x{width} images of "
            f"{config.dataset!r}: random crops would only upsample. Use "
            f"--image_size={native} or smaller."
        )
    if config.stem_stride != 1 and image_size > 32:
        raise ValueError(
            f"`stem_stride`={config.stem_stride} applies to the CIFAR stem of images of "
            f"32 pixels or less; {config.dataset!r} trains at {image_size} pixels with the "
            "ImageNet stem, whose strides are fixed. Use --stem_stride=1, or "
            "--image_size=32 or smaller."
        )
    steps_per_epoch = info.num_examples // config.train_batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`train_batch_size`={config.train_batch_size} is larger than the "
            f"{info.num_examples} training examples of {config.dataset!r}."
        )
    total_steps = config.train_steps or config.train_epochs * steps_per_epoch
    requested_warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    # A run shorter than its warm-up warms up over the whole run, with no decay.
    warmup_steps = min(requested_warmup_steps, total_steps)
    if channels == 1:
        preset = "grayscale"
    elif image_size <= 64:
        preset = "cifar"
    else:
        preset = "imagenet"
    return Plan(
        info, image_size, channels, steps_per_epoch, total_steps, warmup_steps, preset,
        requested_warmup_steps,
    )
