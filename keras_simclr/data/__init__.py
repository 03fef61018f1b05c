"""Input pipelines: data sets by name, two-view pretraining batches, evaluation batches.

SimCLR (Chen et al., 2020, Section 2.1 and Appendix B.9) draws a minibatch of N images,
augments each twice, and contrasts the resulting 2N views. This package supplies the
images (`load`, from TensorFlow Datasets, local Fashion-MNIST IDX files or a folder of
images) and the batches (`pretraining_dataset`, `evaluation_dataset`,
`distributed_pretraining_dataset`). Images stay `uint8` through shuffling and caching;
conversion to floats happens in the augmentation or evaluation preprocessing.

Modules: `sources` (`load`, `info`, `DatasetInfo`: the dispatch by name), one per
source (`tfds`, `idx` for Fashion-MNIST's files, `folder`), `splits` (tfds' slicing
syntax for every source) and `pipelines` (the batches, and resizing).

This is one of the TensorFlow edges of the library (`tf.data`, `tf.distribute`).
"""

from keras_simclr.data.idx import load_fashion_mnist
from keras_simclr.data.pipelines import distributed_pretraining_dataset
from keras_simclr.data.pipelines import evaluation_dataset
from keras_simclr.data.pipelines import pretraining_dataset
from keras_simclr.data.sources import DatasetInfo
from keras_simclr.data.sources import info
from keras_simclr.data.sources import load
