"""Evaluation protocols for learned representations.

A representation is judged by what a simple classifier can do with it. This package
holds the protocols of the SimCLR paper (Chen et al., ICML 2020) and the monitor most
self-supervised libraries report, usable on any encoder: ours, a `keras.applications`
model with `include_top=False, pooling="avg"`, or a randomly initialised baseline.

- `linear_eval` (`linear`): a linear classifier on frozen features h (paper
  Appendix B.6).
- `knn_eval` (`knn`): a cosine-similarity, temperature-weighted k-nearest-neighbour
  vote.
- `fine_tune` (`finetune`): the encoder (optionally with the first projection-head
  layer) trained on a class-balanced labelled subset (paper Section 6; SimCLRv2
  Section 3).
- `supervised_baseline` (`finetune`): the same network trained from scratch with
  labels.
- `extract_features` (`features`): h once, to evaluate several ways.

Each returns an `EvaluationResult` (`results`), a plain JSON record; the two that train
a classifier return it beside the record, `(result, classifier)`. `write_results`
keeps the records in `results.json` and `format_table` prints them. The pictures (`plot_training_curves`,
`plot_embedding`) live in `keras_simclr.visualization`.

Data is either a tuple `(images, labels)` of NumPy arrays or a `tf.data.Dataset` of
`(images, labels)` batches. Images are float32 in [0, 1] or uint8 in [0, 255] (converted
to [0, 1] floats before `preprocess`); labels are integer class ids.
"""

from keras_simclr.evaluation.features import extract_features
from keras_simclr.evaluation.finetune import balanced_subset
from keras_simclr.evaluation.finetune import fine_tune
from keras_simclr.evaluation.finetune import supervised_baseline
from keras_simclr.evaluation.knn import knn_eval
from keras_simclr.evaluation.linear import linear_eval
from keras_simclr.evaluation.results import EvaluationResult
from keras_simclr.evaluation.results import format_table
from keras_simclr.evaluation.results import read_results
from keras_simclr.evaluation.results import write_results

# Names that moved to `keras_simclr.visualization`, still importable from here.
_MOVED_TO_VISUALIZATION = ("plot_training_curves", "plot_embedding")


def __getattr__(name):
    # Imported on first use: `keras_simclr.visualization` imports this package.
    if name in _MOVED_TO_VISUALIZATION:
        from keras_simclr import visualization

        return getattr(visualization, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
