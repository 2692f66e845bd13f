"""ExecuTorch programs (.pte) of the init and step, delegated to XNNPACK, with a dynamic batch of
1 to `width` rows (the programs plan their memory for `width`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from trm_edge.programs import quiet_native_logs


def write_programs(model: torch.nn.Module, modules: dict[str, torch.nn.Module],
                   examples: dict[str, tuple[torch.Tensor, ...]], width: int, files: list[Path]) -> None:
    with quiet_native_logs():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

    batch = torch.export.Dim("batch", min=1, max=width)
    for (name, module), path in zip(modules.items(), files, strict=True):
        args = examples[name]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.export's and torchao's deprecation notes, once per node
            exported = torch.export.export(module, args, dynamic_shapes=tuple({0: batch} for _ in args))
            edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
            program = edge.to_executorch()
        path.write_bytes(program.buffer)
