"""trm_edge.json: what the runtime needs to know about an export, and nothing it must guess.

Every I/O's name, shape and dtype; the halting rule and max steps; the task codec; the
precision; the source checkpoint's hash; the software that wrote it (`software`); the validation results;
and the engines built from it. The runtime reads this file and the graphs, nothing else.
"""

from __future__ import annotations

import platform
from typing import Any

from trm_edge import __version__
from trm_edge.config import ModelConfig
from trm_edge.contract.metadata import ExportMetadata, GraphSpec, HaltingSpec, ModelSpec


def build_metadata(
    config: ModelConfig,
    graphs: dict[str, Any],
    precision: str,
    opset: int,
    batch: int | None,
    source: dict[str, Any],
    validation: dict[str, Any] | None,
) -> ExportMetadata:
    import onnx
    import torch

    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return ExportMetadata(
        model=ModelSpec(
            arch=config.arch, seq_len=config.seq_len, vocab_size=config.vocab_size, hidden_size=config.hidden_size,
            state_len=config.total_len, puzzle_emb_len=config.puzzle_emb_len,
            num_puzzle_identifiers=config.num_puzzle_identifiers, uses_puzzle_identifiers=config.puzzle_emb_ndim > 0,
            config=config.to_dict(),
        ),
        task=config.task,
        task_options=dict(config.task_options),
        halting=HaltingSpec(config.halt_rule, config.halt_max_steps),
        precision=precision,
        dynamic_batch=batch is None,
        batch_size=batch,
        graphs={name: GraphSpec.from_dict(spec.to_dict()) for name, spec in graphs.items()},
        source=source,
        validation=validation,
        software={
            "trm_edge": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort_version,
            "opset": opset,
            "python": platform.python_version(),
        },
    )
