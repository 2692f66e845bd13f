"""trm_edge.json as types: what an export tells the runtime, read and written in one place.

`trm_edge/contract/export_dir.py` checks the file's schema and bounds and then builds an `ExportMetadata`
from it; `to_dict` writes it back (the JSON layout is the export format, versioned by
`EXPORT_FORMAT_VERSION`). Export builds one (`export/metadata.py`), calibration and engine builds
update one; the runtime and serving read its fields, never the raw JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

# State dtypes numpy can hold (a bf16 state needs a backend that keeps it on the device).
NUMPY_STATE_DTYPES = {"float32": np.float32, "float16": np.float16}

EXPORT_FORMAT = "trm-edge-export"
EXPORT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # "batch" for the batch axis of a dynamic export
    dtype: str  # float32 | float16 | bfloat16 | int32 | int64 | bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(d["name"], tuple(d["shape"]), d["dtype"])


@dataclass(frozen=True)
class GraphSpec:
    file: str  # inside the export directory
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphSpec:
        return cls(d["file"], tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                   tuple(TensorSpec.from_dict(t) for t in d["outputs"]))

    @property
    def tensors(self) -> tuple[TensorSpec, ...]:
        return self.inputs + self.outputs


@dataclass(frozen=True)
class ModelSpec:
    arch: str
    seq_len: int
    vocab_size: int
    hidden_size: int
    state_len: int  # puzzle-embedding prefix + seq_len
    puzzle_emb_len: int
    num_puzzle_identifiers: int
    uses_puzzle_identifiers: bool
    config: dict[str, Any]  # the checkpoint's full ModelConfig

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "seq_len": self.seq_len, "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size, "state_len": self.state_len, "puzzle_emb_len": self.puzzle_emb_len,
                "num_puzzle_identifiers": self.num_puzzle_identifiers,
                "uses_puzzle_identifiers": self.uses_puzzle_identifiers, "config": self.config}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(d["arch"], d["seq_len"], d["vocab_size"], d["hidden_size"], d["state_len"],
                   d.get("puzzle_emb_len", 0), d["num_puzzle_identifiers"], d["uses_puzzle_identifiers"],
                   d.get("config", {}))


@dataclass(frozen=True)
class HaltingSpec:
    rule: str  # the model's own rule: q_halt>0 (TRM) or q_halt>q_continue (HRM)
    max_steps: int
    policy: str | None = None  # the calibrated default, when `calibrate` stored one
    calibration: dict[str, Any] | None = None  # how it was chosen

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "max_steps": self.max_steps}
        if self.policy is not None:
            out["policy"] = self.policy
        if self.calibration is not None:
            out["calibration"] = self.calibration
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HaltingSpec:
        return cls(d["rule"], d["max_steps"], d.get("policy"), d.get("calibration"))


@dataclass(frozen=True)
class ExportMetadata:
    model: ModelSpec
    task: str  # codec name: sudoku, maze, arc or generic
    task_options: dict[str, Any]
    halting: HaltingSpec
    precision: str  # fp32 | fp16 | bf16
    dynamic_batch: bool
    batch_size: int | None  # the fixed batch of a static export
    graphs: dict[str, GraphSpec]  # init, step
    source: dict[str, Any] = field(default_factory=dict)  # checkpoint name, sha256, its info
    validation: dict[str, Any] | None = None
    engines: tuple[dict[str, Any], ...] = ()
    # The software that wrote the export (trm_edge, torch, onnx, onnxruntime, opset, python): "versions"
    # in trm-edge means test-time versions of a puzzle only.
    software: dict[str, Any] = field(default_factory=dict)
    # solve.onnx, where the export wrote one (--solve-graph): file, halting, max_steps, verifies, validation.
    solve: dict[str, Any] | None = None
    # The int8 step beside the float graphs, where `export --precision int8` wrote one: file,
    # products, bytes, scales (where they came from), validation.
    int8: dict[str, Any] | None = None
    # The same graphs as programs of a phone runtime, where `export --format executorch|litert` wrote
    # them (trm_edge/programs.py): {format: {init, step, width, validation, software}}.
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Every file the export runs from, by name: {"bytes": size, "sha256": hex}, recorded by the one
    # metadata writer (contract/export_dir.py) so the reader can tell a file that does not belong.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def state_dtype(self) -> str:
        """The dtype of z_H / z_L (the step's state inputs)."""
        return self.graphs["step"].inputs[1].dtype

    @property
    def puzzle_names(self) -> list[str]:
        """Names of the puzzle identifiers (index = identifier; ARC: one per task version), if carried."""
        names = (self.source.get("info") or {}).get("puzzle_names")
        return [str(n) for n in names] if isinstance(names, list) else []

    def with_halting(self, policy: str, calibration: dict[str, Any]) -> ExportMetadata:
        return replace(self, halting=replace(self.halting, policy=policy, calibration=calibration))

    def with_engine(self, record: dict[str, Any]) -> ExportMetadata:
        """Add (or replace, by file name) an engine's entry."""
        kept = tuple(e for e in self.engines if e.get("file") != record["file"])
        return replace(self, engines=(*kept, record))

    def without_engines(self, files: set[str]) -> ExportMetadata:
        """These engines' entries gone (a rebuild is about to write new bytes under their names)."""
        return replace(self, engines=tuple(e for e in self.engines if e.get("file") not in files))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_FORMAT_VERSION,
            "model": self.model.to_dict(),
            "task": {"name": self.task, "options": self.task_options},
            "halting": self.halting.to_dict(),
            "precision": self.precision,
            "batch": {"dynamic": self.dynamic_batch, "size": self.batch_size},
            "graphs": {name: g.to_dict() for name, g in self.graphs.items()},
            "source": self.source,
            "validation": self.validation,
            "engines": list(self.engines),
            "software": self.software,
            "solve": self.solve,
            **({"int8": self.int8} if self.int8 is not None else {}),
            **({"programs": self.programs} if self.programs else {}),
            **({"files": self.files} if self.files else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExportMetadata:
        """From a dict whose schema was checked (`export_dir.check_metadata`)."""
        return cls(
            model=ModelSpec.from_dict(d["model"]),
            task=d["task"]["name"],
            task_options=dict(d["task"].get("options") or {}),
            halting=HaltingSpec.from_dict(d["halting"]),
            precision=d["precision"],
            dynamic_batch=d["batch"]["dynamic"],
            batch_size=d["batch"].get("size"),
            graphs={name: GraphSpec.from_dict(d["graphs"][name]) for name in ("init", "step")},
            source=dict(d.get("source") or {}),
            validation=d.get("validation"),
            engines=tuple(d.get("engines") or ()),
            software=dict(d.get("software") or d.get("versions") or {}),  # "versions": exports before 0.2
            solve=d.get("solve"),
            int8=d.get("int8"),
            programs=dict(d.get("programs") or {}),
            files=dict(d.get("files") or {}),
        )

    def with_solve(self, solve: dict[str, Any]) -> ExportMetadata:
        return replace(self, solve=solve)

    def with_int8(self, int8: dict[str, Any] | None) -> ExportMetadata:
        return replace(self, int8=int8)

    def with_program(self, format: str, record: dict[str, Any]) -> ExportMetadata:
        """Add (or replace) the `format` programs' record."""
        return replace(self, programs={**self.programs, format: record})

    def with_files(self, files: dict[str, dict[str, Any]]) -> ExportMetadata:
        return replace(self, files=files)

    def file_names(self) -> list[str]:
        """The files this metadata names: graphs, int8 step, solve.onnx, programs, engines."""
        names = [g.file for g in self.graphs.values()]
        names += [self.int8_step] if self.int8_step else []
        names += [str(self.solve["file"])] if self.solve else []
        names += [str(r[graph]) for r in self.programs.values() for graph in ("init", "step")]
        names += [str(e["file"]) for e in self.engines]
        return list(dict.fromkeys(names))

    @property
    def int8_step(self) -> str | None:
        """The int8 step's file name, where the export has one."""
        return str(self.int8["file"]) if self.int8 else None
