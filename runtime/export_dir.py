"""Reading an export directory: trm_edge.json and the graph files it names (torch-free)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trm_edge.errors import TrmEdgeError

METADATA_FILE = "trm_edge.json"
EXPORT_FORMAT = "trm-edge-export"
EXPORT_FORMAT_VERSION = 1


def read_metadata(export_dir: str | Path) -> dict[str, Any]:
    """The export's metadata, checked for format; a clear error if this is not an export dir."""
    export_dir = Path(export_dir)
    path = export_dir / METADATA_FILE
    if not path.is_file():
        hint = (
            " (that is a checkpoint: run 'trm-edge export' on it first)" if export_dir.suffix == ".safetensors" else ""
        )
        raise TrmEdgeError(f"{export_dir} is not a trm-edge export directory: no {METADATA_FILE}{hint}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrmEdgeError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise TrmEdgeError(f"{path} is not trm-edge export metadata")
    if meta.get("format_version") != EXPORT_FORMAT_VERSION:
        raise TrmEdgeError(
            f"{path} has export format version {meta.get('format_version')}; this trm-edge reads "
            f"{EXPORT_FORMAT_VERSION}: re-export the checkpoint with this version"
        )
    return meta


def write_engine_record(export_dir: str | Path, record: dict[str, Any]) -> None:
    """Add (or replace, by file name) an engine's entry in trm_edge.json."""
    meta = read_metadata(export_dir)
    meta["engines"] = [e for e in meta.get("engines", []) if e.get("file") != record["file"]] + [record]
    write_metadata(export_dir, meta)


def write_metadata(export_dir: str | Path, meta: dict[str, Any]) -> Path:
    """The one writer of trm_edge.json (export, engine builds and calibration all go through it)."""
    path = Path(export_dir) / METADATA_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path
