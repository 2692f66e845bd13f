"""Write init.onnx and step.onnx with the TorchScript-based exporter at a fixed opset.

The TorchScript exporter is used (not the dynamo one) because it emits exactly the opset asked
for, folds constants, and keeps one initializer per weight even though TRM reuses its net in
every cycle: the graph stays close to params x bytes per param.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from trm_edge.errors import TrmEdgeError
from trm_edge.export.files import INIT_GRAPH, STEP_GRAPH
from trm_edge.export.graphs import (
    INIT_INPUTS,
    INIT_OUTPUTS,
    STEP_INPUTS,
    STEP_OUTPUTS,
    InitGraph,
    StepGraph,
)
from trm_edge.model import RecursiveReasoningModel

# TensorRT 10.x (what JetPack ships) parses opsets 9-20; 17 is the newest every deployed parser has.
MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 17, 20, 17


@dataclass
class TensorSpec:
    name: str
    shape: list[int | str]  # "batch" marks the dynamic axis
    dtype: str

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": self.shape, "dtype": self.dtype}


@dataclass
class GraphSpec:
    file: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise TrmEdgeError(
            f"opset {opset} is not supported: trm-edge exports opsets {MIN_OPSET}-{MAX_OPSET} "
            f"({DEFAULT_OPSET}, the default, is what TensorRT 10.x on Jetson parses)"
        )


def export_graphs(model: RecursiveReasoningModel, out_dir: Path, opset: int, batch: int | None,
                  step_file: str = STEP_GRAPH, with_init: bool = True) -> dict[str, GraphSpec]:
    """Export both graphs of `model` (already in its export precision) into `out_dir`, or only the
    step (`with_init=False`: an int8 model's step beside the float export's graphs).

    `batch=None` makes the batch axis dynamic; an int fixes it.
    """
    check_opset(opset)
    c = model.config
    b: int | str = "batch" if batch is None else batch
    example_b = 2 if batch is None else batch
    dtype = model.compute_dtype
    dname = str(dtype).removeprefix("torch.")
    has_ids = c.puzzle_emb_ndim > 0

    tokens = torch.ones(example_b, c.seq_len, dtype=torch.int32)
    ids = torch.zeros(example_b, dtype=torch.int32)
    init_inputs = (tokens, ids) if has_ids else (tokens,)
    init_names = list(INIT_INPUTS if has_ids else INIT_INPUTS[:1])
    init_spec = GraphSpec(
        INIT_GRAPH,
        [TensorSpec("tokens", [b, c.seq_len], "int32")]
        + ([TensorSpec("puzzle_identifiers", [b], "int32")] if has_ids else []),
        [TensorSpec("x_emb", [b, c.total_len, c.hidden_size], dname)],
    )
    state_shape: list[int | str] = [b, c.total_len, c.hidden_size]
    step_spec = GraphSpec(
        step_file,
        [
            TensorSpec("x_emb", state_shape, dname),
            TensorSpec("z_H", state_shape, dname),
            TensorSpec("z_L", state_shape, dname),
            TensorSpec("reset", [b], "bool"),
        ],
        [
            TensorSpec("z_H_next", state_shape, dname),
            TensorSpec("z_L_next", state_shape, dname),
            TensorSpec("logits", [b, c.seq_len, c.vocab_size], "float32"),
            TensorSpec("answer", [b, c.seq_len], "int32"),
            TensorSpec("q_halt", [b], "float32"),
            TensorSpec("q_continue", [b], "float32"),
        ],
    )
    with torch.no_grad():
        x = model.embed(tokens, ids if has_ids else None)
        state = model.initial_state(example_b)
        reset = torch.ones(example_b, dtype=torch.bool)
        if with_init:
            _export(
                InitGraph(model),
                init_inputs,
                out_dir / init_spec.file,
                init_names,
                list(INIT_OUTPUTS),
                opset,
                batch is None,
            )
        _export(
            StepGraph(model),
            (x, state.z_H, state.z_L, reset),
            out_dir / step_spec.file,
            list(STEP_INPUTS),
            list(STEP_OUTPUTS),
            opset,
            batch is None,
        )
    return {"init": init_spec, "step": step_spec} if with_init else {"step": step_spec}


def _export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    dynamic: bool,
) -> None:
    dynamic_axes = {name: {0: "batch"} for name in input_names + output_names} if dynamic else None
    module.eval()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation and tracing caveats; neither applies
        # to a step with static shapes and no data-dependent control flow.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
