"""TF2 checkpoints (a SavedModel's `variables/`): variables found by attribute path.

The reference's Keras model (`tf2/model.py`) reaches its variables through
attributes, e.g. `resnet_model/block_groups/G/layers/B/conv_relu_dropblock_layers/
K/conv2d/kernel`, `_projection_head/linear_layers/J/...`,
`supervised_head/linear_layer/dense/...`. A SavedModel's keys are shorter aliases
(`resnet_model/variables/99`), so the paths are followed through the checkpoint's
object graph, never parsed from keys.
"""

from tensorflow.core.protobuf import trackable_object_graph_pb2

from keras_simclr.models.convert.layout import MISSING
from keras_simclr.models.convert.layout import OBJECT_GRAPH_KEY
from keras_simclr.models.convert.layout import WEIGHTS
from keras_simclr.models.convert.layout import Names
from keras_simclr.models.convert.layout import encoder_layers
from keras_simclr.models.convert.layout import first_line
from keras_simclr.models.convert.layout import not_simclr


class Tf2Names(Names):
    """Names of a TF2 checkpoint: attribute paths in its object graph."""

    def __init__(self, reader, prefix):
        super().__init__(prefix)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        try:
            graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
        except Exception as error:  # noqa: BLE001 (a protobuf DecodeError or a read error)
            raise ValueError(
                f"Cannot read the object graph of {prefix!r} ({first_line(error)}): the "
                "checkpoint is truncated or corrupt. Download it again."
            ) from None
        self.graph = graph
        self.shapes = reader.get_variable_to_shape_map()
        self.model = self._find_model()
        if self.model is None:
            raise not_simclr(prefix, self.shapes)

    def _children(self, node):
        return {child.local_name: child.node_id for child in self.graph.nodes[node].children}

    def _find_model(self):
        """The node of the reference's Keras model: the first, breadth-first from the
        root, with a `resnet_model` attribute."""
        queue, seen = [0], {0}
        while queue:
            node = queue.pop(0)
            children = self._children(node)
            if "resnet_model" in children:
                return node
            for child in children.values():
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return None

    def _node(self, path):
        node = self.model
        for attribute in path.split("/"):
            node = self._children(node).get(attribute)
            if node is None:
                return None
        return node

    def _key(self, path):
        node = self._node(path)
        if node is not None:
            for attribute in self.graph.nodes[node].attributes:
                if attribute.name == "VARIABLE_VALUE":
                    return attribute.checkpoint_key
        return f"{MISSING}{path}"

    def shape(self, key):
        return self.shapes[key]

    def encoder_shape(self):
        stem = "resnet_model/initial_conv_relu_max_pool"
        if self._node(f"{stem}/0/conv2d/kernel") is None:
            raise not_simclr(self.prefix, self.shapes)
        blocks = []
        for stage in range(4):
            layers = self._node(f"resnet_model/block_groups/{stage}/layers")
            blocks.append(len(self._children(layers)) if layers is not None else 0)
        selective_kernels = self._node(
            "resnet_model/block_groups/0/layers/0/conv_relu_dropblock_layers/3/conv2d_fixed_padding"
        ) is not None
        per_block, stem_convs = (5, 3) if selective_kernels else (3, 1)
        third = self._key(f"{stem}/4/conv2d/kernel")
        return self.infer_encoder(
            self.shape(self._key(f"{stem}/0/conv2d/kernel")),
            None if third.startswith(MISSING) else self.shape(third),
            stem_convs + 4 + per_block * sum(blocks),
        )

    def encoder_keys(self, depth, selective_kernels):
        return {
            (name, weight): self._key(f"resnet_model/{path}/{weight}")
            for name, kind, path in encoder_layers(depth, selective_kernels)
            for weight in WEIGHTS[kind]
        }

    def head_layers(self):
        layers = self._node("_projection_head/linear_layers")
        return len(self._children(layers)) if layers is not None else 0

    def head_key(self, layer, kind, weight):
        part = "dense" if kind == "dense" else "bn_relu/bn"
        return self._key(f"_projection_head/linear_layers/{layer}/{part}/{weight}")

    def has_supervised_head(self):
        return self._node("supervised_head/linear_layer/dense/kernel") is not None

    def supervised_key(self, weight):
        return self._key(f"supervised_head/linear_layer/dense/{weight}")

    def unused(self, used):
        """Variables of the model's encoder and heads that no layer of ours reads."""
        found = set()
        queue = [
            node for node in (
                self._node(part) for part in ("resnet_model", "_projection_head", "supervised_head")
            ) if node is not None
        ]
        seen = set(queue)
        while queue:
            node = queue.pop()
            for attribute in self.graph.nodes[node].attributes:
                if attribute.name == "VARIABLE_VALUE":
                    found.add(attribute.checkpoint_key)
            for child in self._children(node).values():
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return sorted(found - used)
