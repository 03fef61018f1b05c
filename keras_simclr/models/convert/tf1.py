"""TF1 checkpoints (gs://simclr-checkpoints): variables named by creation order.

The reference's `resnet.py` names the N-th convolution and batch norm it creates
`base_model/conv2d_N/kernel` and `base_model/batch_normalization_N/...`; its
`model_util.py` names the heads `head_contrastive/nl_J/...` and
`head_supervised/linear_layer/dense/...`.
"""

import re

from keras_simclr.models.convert.layout import MISSING
from keras_simclr.models.convert.layout import WEIGHTS
from keras_simclr.models.convert.layout import Names
from keras_simclr.models.convert.layout import encoder_layers
from keras_simclr.models.convert.layout import not_simclr

# The leaves of the model's variables; optimizer slots (`.../Momentum`) end otherwise.
_LEAVES = ("kernel", "bias") + WEIGHTS["bn"]


class Tf1Names(Names):
    """Names of a TF1 checkpoint: variable scopes, numbered in creation order."""

    _SCOPES = ("base_model/", "head_contrastive/", "head_supervised/")

    def __init__(self, shapes, prefix, ema):
        super().__init__(prefix)
        self.scope = "ema_model/" if ema else ""
        if ema and not any(key.startswith("ema_model/base_model/") for key in shapes):
            raise ValueError(
                f"{prefix!r} holds no moving-average copy (ema_model/base_model/...). "
                "Convert without `ema`."
            )
        # The model's variables, named without the EMA scope: optimizer slots
        # (`.../Momentum`), the step counter and the other copy are left out.
        scopes = tuple(self.scope + scope for scope in self._SCOPES)
        self.shapes = {
            key[len(self.scope):]: shape
            for key, shape in shapes.items()
            if key.startswith(scopes) and key.rsplit("/", 1)[-1] in _LEAVES
        }
        self.convs = self._numbered("conv2d", "kernel")
        self.bns = self._numbered("batch_normalization", "gamma")
        if not self.convs or self.convs[0].startswith(MISSING):
            raise not_simclr(prefix, shapes)

    def _numbered(self, layer, weight):
        """The scopes `base_model/<layer>`, `<layer>_1`, ... in creation order."""
        pattern = re.compile(f"base_model/{layer}(?:_([0-9]+))?/{weight}")
        numbers = [pattern.fullmatch(key) for key in self.shapes]
        numbers = {int(match.group(1) or 0) for match in numbers if match}
        # Sorted by number: as strings, conv2d_10 would come before conv2d_2.
        scopes = []
        for number in range(max(numbers, default=-1) + 1):
            scope = f"base_model/{layer}_{number}" if number else f"base_model/{layer}"
            scopes.append(scope if number in numbers else MISSING + scope)
        return scopes

    def shape(self, key):
        return self.shapes[key[len(self.scope):]]

    def encoder_shape(self):
        third = self.shapes.get(f"{self.convs[2]}/kernel") if len(self.convs) > 2 else None
        return self.infer_encoder(self.shapes[f"{self.convs[0]}/kernel"], third, len(self.convs))

    def encoder_keys(self, depth, selective_kernels):
        # The n-th convolution (batch norm) created is conv2d_n (batch_normalization_n).
        numbered = {"conv": iter(self.convs), "bn": iter(self.bns)}
        keys = {}
        for name, kind, _ in encoder_layers(depth, selective_kernels):
            scope = next(numbered[kind], f"{MISSING}base_model/<{kind} for {name}>")
            for weight in WEIGHTS[kind]:
                keys[name, weight] = self._key(f"{scope}/{weight}")
        return keys

    def _key(self, name):
        if name.startswith(MISSING) or name not in self.shapes:
            return MISSING + name.lstrip(MISSING)
        return self.scope + name

    def _head_scope(self, layer):
        if "head_contrastive/l_0/dense/kernel" in self.shapes:
            return "head_contrastive/l_0"
        return f"head_contrastive/nl_{layer}"

    def head_layers(self):
        if "head_contrastive/l_0/dense/kernel" in self.shapes:
            return 1
        layers = 0
        while f"head_contrastive/nl_{layers}/dense/kernel" in self.shapes:
            layers += 1
        return layers

    def head_key(self, layer, kind, weight):
        part = "dense" if kind == "dense" else "batch_normalization"
        return self._key(f"{self._head_scope(layer)}/{part}/{weight}")

    def has_supervised_head(self):
        return "head_supervised/linear_layer/dense/kernel" in self.shapes

    def supervised_key(self, weight):
        return self._key(f"head_supervised/linear_layer/dense/{weight}")

    def unused(self, used):
        return sorted(key for key in self.shapes if self.scope + key not in used)
