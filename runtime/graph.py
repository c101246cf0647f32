"""The canonical graph of a config: every node, constant, input and output of the float
artifact, as plain data.

The exporter writes exactly this graph (quantized schemes add only the nodes that rebuild
each logical weight from its stored form); the loader can hold a file against it. The
task's spec contributes its input and output stages; everything between them (per layer:
slice the state, one standard LSTM node, drop the direction axis; then the head MatMul)
is shared by every task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_edge.runtime.format import (
    HEAD_WEIGHT,
    INPUT_C0,
    INPUT_H0,
    OUTPUT_CN,
    OUTPUT_HN,
    lstm_b,
    lstm_r,
    lstm_w,
)
from lstm_edge.runtime.tasks.base import HEAD_MATMUL_OUT, X_STAGE_OUT, StageNode

# Names of the dynamic axes of the graph's inputs and outputs.
DIM_BATCH = "batch"
DIM_TIME = "time"


@dataclass(frozen=True)
class CanonicalGraph:
    nodes: tuple[StageNode, ...]  # in graph order
    # initializers the nodes read (const.*: int64, and the stages' own), in order
    constants: dict[str, np.ndarray]


def const_start(layer: int) -> str:
    return f"const.l{layer}.start"


def const_end(layer: int) -> str:
    return f"const.l{layer}.end"


CONST_SQUEEZE_AXES = "const.squeeze_axes"
CONST_AXIS0 = "const.axis0"


def canonical_graph(config) -> CanonicalGraph:
    """The float graph of `config` (a ModelConfig): nodes in order and the int64 constants
    in the order the exporter writes them (after the weights)."""
    spec = config.spec
    constants: dict[str, np.ndarray] = {CONST_SQUEEZE_AXES: np.array([1], np.int64)}
    nodes = [
        *spec.input_stage(config),
        StageNode("Transpose", (X_STAGE_OUT,), ("x0",), "to_time_major", {"perm": [1, 0, 2]}),
    ]
    x = "x0"
    hn_parts, cn_parts = [], []
    for layer in range(config.num_layers):
        starts, ends = const_start(layer), const_end(layer)
        constants[starts] = np.array([layer], np.int64)
        constants[ends] = np.array([layer + 1], np.int64)
        h0_l, c0_l = f"h0.l{layer}", f"c0.l{layer}"
        y, yh, yc, x_next = f"y.l{layer}", f"hn.l{layer}", f"cn.l{layer}", f"x{layer + 1}"
        lstm_inputs = (x, lstm_w(layer), lstm_r(layer), lstm_b(layer), "", h0_l, c0_l)
        slice_args = (starts, ends, CONST_AXIS0)
        nodes += [
            StageNode("Slice", (INPUT_H0, *slice_args), (h0_l,), f"slice_h0_l{layer}"),
            StageNode("Slice", (INPUT_C0, *slice_args), (c0_l,), f"slice_c0_l{layer}"),
            StageNode(
                "LSTM",
                lstm_inputs,
                (y, yh, yc),
                f"lstm_l{layer}",
                {"hidden_size": config.hidden_size},
            ),
            # Y is [time, num_directions=1, batch, hidden]; drop the direction axis.
            StageNode("Squeeze", (y, CONST_SQUEEZE_AXES), (x_next,), f"squeeze_l{layer}"),
        ]
        hn_parts.append(yh)
        cn_parts.append(yc)
        x = x_next
    constants[CONST_AXIS0] = np.array([0], np.int64)
    for out_name, parts in ((OUTPUT_HN, hn_parts), (OUTPUT_CN, cn_parts)):
        if len(parts) == 1:
            nodes.append(StageNode("Identity", tuple(parts), (out_name,), out_name))
        else:
            nodes.append(StageNode("Concat", tuple(parts), (out_name,), out_name, {"axis": 0}))
    nodes += [
        StageNode("Transpose", (x,), ("y_btH",), "to_batch_major", {"perm": [1, 0, 2]}),
        StageNode("MatMul", ("y_btH", HEAD_WEIGHT), (HEAD_MATMUL_OUT,), "head_matmul"),
        *spec.output_stage(config),
    ]
    constants.update(spec.stage_constants(config))
    return CanonicalGraph(nodes=tuple(nodes), constants=constants)
