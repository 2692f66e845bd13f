"""`auto`'s choice remembered in the export directory, so that only the first load measures.

Choosing a CPU backend means compiling each candidate, checking a lower precision against fp32
and timing a few steps of each: seconds, where a solve of one puzzle takes less. The outcome is
kept in `runtime_choices.json` beside the graphs, one entry per key: the CPU (name and deciding
flags), the cores this process may use (their count and which: a process pinned to fewer cores
chooses again), every runtime library's version, trm-edge's own code (its source files' hash: an
editable install keeps one version string across commits), every export file a candidate runs
(graphs, int8 step, phone programs, validation puzzles), what was asked (backend, precision,
threads) and the batch width timed. `trm-edge doctor --export DIR --measure` measures
again whatever is remembered. Any change of these measures again; a missing, damaged or
unwritable file only costs the measurement.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trm_edge.atomic import atomic_write
from trm_edge.contract.export_dir import METADATA_FILE
from trm_edge.contract.metadata import ExportMetadata
from trm_edge.contract.validation_file import VALIDATION_FILE
from trm_edge.errors import TrmEdgeError
from trm_edge.hardware import cpu_name_and_flags, native_half_precision_switched_off, usable_cores
from trm_edge.programs import installed_version

CACHE_FILE = "runtime_choices.json"
CACHE_FORMAT = "trm-edge-runtime-choices"
MAX_ENTRIES = 32  # widths x asks kept per export (oldest dropped)
# Every library a candidate may run on (read from the installed packages' metadata: nothing imported).
LIBRARIES = ("trm-edge", "onnxruntime", "onnxruntime-gpu", "openvino", "executorch", "ai-edge-litert", "tensorrt")
# The folders trm-edge's modules live in (pyproject's package-dir: the stages sit beside the package).
CODE_PACKAGES = ("trm_edge", "trm_edge.runtime", "trm_edge.export", "trm_edge.train")


@dataclass
class CachedChoice:
    backend: str
    precision: str
    why: str
    # Median milliseconds per step of every candidate timed ("openvino bf16": 3.1, ...).
    step_ms: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)  # each lower precision's check, as it read when it passed
    notes: list[str] = field(default_factory=list)  # the candidates passed over, and why
    width: int = 0
    static_width: int | None = None  # the choice runs a step compiled for this width
    streams: int | None = None  # ... or splits the batch over this many streams
    float_precision: str | None = None  # an int8 step whose float parts run lowered to this
    spread_ms: dict[str, float] = field(default_factory=dict)  # each candidate's interquartile range


def code_roots() -> list[Path]:
    """The folders trm-edge's modules are read from (one in a wheel; the package and its stages in a
    checkout's editable install)."""
    roots: set[Path] = set()
    for package in CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        roots.update(Path(folder) for folder in ((spec and spec.submodule_search_locations) or []))
    return sorted(roots)


def source_hash(roots: list[Path]) -> str:
    """A hash of the Python files under `roots`: their names and contents."""
    digest = hashlib.sha256()
    for path in sorted({f for root in roots for f in root.rglob("*.py")}):
        digest.update(f"{path.parent.name}/{path.name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


@functools.cache
def code_hash() -> str:
    """trm-edge's own code, once per process (an editable install keeps one version string across
    commits): about 25 ms for its ~120 modules on a busy 2-core Zen 5, a timing pass takes seconds."""
    return source_hash(code_roots())


def export_files(meta: ExportMetadata) -> list[str]:
    """The files of the export a candidate runs or is checked on: its metadata, validation puzzles,
    graphs, int8 step and phone programs (solve.onnx and engines are no CPU candidate's)."""
    names = [METADATA_FILE, VALIDATION_FILE, *(g.file for g in meta.graphs.values())]
    names += [meta.int8_step] if meta.int8_step else []
    names += [str(record[part]) for record in meta.programs.values() for part in ("init", "step")]
    return list(dict.fromkeys(names))


def choice_key(export_dir: Path, meta: ExportMetadata, backend: str, precision: str, width: int,
               threads: int | None) -> dict[str, Any]:
    """Everything the choice depends on."""
    name, flags = cpu_name_and_flags()
    files = {}
    for file in export_files(meta):
        path = export_dir / file
        if path.is_file():
            stat = path.stat()
            files[file] = [stat.st_size, stat.st_mtime_ns]
    return {
        "cpu": name, "flags": flags, "no_native_bf16": native_half_precision_switched_off(), "cores": usable_cores(),
        "libraries": {p: installed_version(p) for p in LIBRARIES}, "code": code_hash(),
        "export": files, "backend": backend, "precision": precision, "width": width, "threads": threads,
    }


def _key_id(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def _entries(export_dir: Path) -> dict[str, Any]:
    try:
        doc = json.loads((export_dir / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT or not isinstance(doc.get("entries"), dict):
        return {}
    return doc["entries"]


def read_cached_choice(export_dir: Path, key: dict[str, Any], allowed: set[tuple[str, str]]) -> CachedChoice | None:
    """The choice stored under `key`, if it is one of `allowed` (backend, precision) pairs."""
    entry = _entries(export_dir).get(_key_id(key))
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    try:
        choice = CachedChoice(**entry["choice"])
    except (KeyError, TypeError):
        return None
    if (choice.backend, choice.precision) not in allowed:
        return None
    return choice


def write_cached_choice(export_dir: Path, key: dict[str, Any], choice: CachedChoice) -> bool:
    """Store `choice` under `key`; False (and nothing else) where the folder is not writable."""
    entries = _entries(export_dir)
    entries.pop(_key_id(key), None)
    entries[_key_id(key)] = {"key": key, "choice": asdict(choice)}
    while len(entries) > MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    try:
        atomic_write(export_dir / CACHE_FILE, json.dumps({"format": CACHE_FORMAT, "entries": entries}, indent=1))
    except (TrmEdgeError, OSError):
        return False
    return True
