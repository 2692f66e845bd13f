"""Reading an export directory: trm_edge.json and the graph files it names (torch-free).

trm_edge.json records every file it names (and validation.npz) with its size and sha256; the reader
refuses a folder whose files do not belong together (a file replaced, truncated or from another
export), in one line that says to export again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from trm_edge.atomic import atomic_write
from trm_edge.contract.metadata import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, ExportMetadata
from trm_edge.contract.validation_file import VALIDATION_FILE
from trm_edge.errors import TrmEdgeError
from trm_edge.fault_points import no_fault_points
from trm_edge.precisions import GRAPH_PRECISIONS
from trm_edge.programs import PROGRAM_FORMATS

METADATA_FILE = "trm_edge.json"


# Bounds on what trm_edge.json may ask of the runtime (a value beyond them is a damaged or hostile file).
MAX_STEPS_BOUND = 4096
MAX_SEQ_LEN = 1 << 16
MAX_VOCAB = 1 << 16
MAX_HIDDEN = 1 << 15
RULES = ("q_halt>0", "q_halt>q_continue")
TENSOR_DTYPES = ("float32", "float16", "bfloat16", "int32", "int64", "bool")


def read_metadata(
    export_dir: str | Path, allow_failed_validation: bool = False, graphs_here: bool = True
) -> ExportMetadata:
    """The export's metadata, checked for format and schema (types, ranges, known names, graph
    files inside the export directory); a clear error if this is not a usable export dir.
    `graphs_here=False` for a Triton repository's solver model, whose graphs are other models."""
    export_dir = Path(export_dir)
    path = export_dir / METADATA_FILE
    if not path.is_file():
        hint = (
            " (that is a checkpoint: run 'trm-edge export' on it first)" if export_dir.suffix == ".safetensors" else ""
        )
        raise TrmEdgeError(f"{export_dir} is not a trm-edge export directory: no {METADATA_FILE}{hint}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise TrmEdgeError(f"{path} is not valid JSON: {str(exc)[:200]}") from None
    except OSError as exc:
        raise TrmEdgeError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise TrmEdgeError(f"{path} is not trm-edge export metadata")
    if meta.get("format_version") != EXPORT_FORMAT_VERSION:
        raise TrmEdgeError(
            f"{path} has export format version {meta.get('format_version')}; this trm-edge reads "
            f"{EXPORT_FORMAT_VERSION}: re-export the checkpoint with this version"
        )
    try:
        check_metadata(meta, export_dir if graphs_here else None)
    except _Bad as bad:
        raise TrmEdgeError(f"{path} is damaged: {bad}; export the checkpoint again") from None
    metadata = ExportMetadata.from_dict(meta)
    if graphs_here:
        check_files(export_dir, metadata)
    validation = meta.get("validation")
    if isinstance(validation, dict) and validation.get("passed") is False and not allow_failed_validation:
        if isinstance(validation.get("failed"), str):  # a check after the graphs' (export/exporter.py)
            raise TrmEdgeError(f"{export_dir} failed a check when it was exported, so it cannot be trusted "
                               f"({validation['failed'][:300]}): export again")
        raise TrmEdgeError(
            f"{export_dir} failed its validation against PyTorch when it was exported, so its answers cannot be "
            "trusted: export again (with --atol to accept larger differences knowingly)"
        )
    return metadata


class _Bad(Exception):
    """One schema violation, worded for the error message."""


def _field(node: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(node, dict) or key not in node:
        raise _Bad(f"'{where}{key}' is missing")
    value = node[key]
    # bool is an int in Python: never accept one where a number is meant, or a number for a bool.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise _Bad(f"'{where}{key}' is {type(value).__name__} {value!r:.40}, not {_kind_name(kind)}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _kinds(kind))


def _int(node: Any, key: str, where: str, low: int, high: int) -> int:
    value = _field(node, key, int, where)
    if not low <= value <= high:
        raise _Bad(f"'{where}{key}' is {value}, outside [{low}, {high}]")
    return value


def _inside(export_dir: Path | None, name: Any, where: str) -> None:
    """A file named in the metadata must be a plain name inside the export directory."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise _Bad(f"'{where}' must name a file inside the export directory, not {name!r:.60}")
    if export_dir is not None and not (export_dir / name).is_file():
        raise _Bad(f"'{where}' names {name}, which is not in {export_dir}")


def check_metadata(meta: dict[str, Any], export_dir: Path | None) -> None:
    """Everything the runtime reads from trm_edge.json, checked once, here (raises _Bad)."""
    model = _field(meta, "model", dict, "")
    _field(model, "arch", str, "model.")
    _int(model, "seq_len", "model.", 1, MAX_SEQ_LEN)
    _int(model, "vocab_size", "model.", 2, MAX_VOCAB)
    _int(model, "hidden_size", "model.", 1, MAX_HIDDEN)
    _int(model, "state_len", "model.", 1, MAX_SEQ_LEN + 1024)
    _int(model, "num_puzzle_identifiers", "model.", 1, 1 << 31)
    _field(model, "uses_puzzle_identifiers", bool, "model.")
    task = _field(meta, "task", dict, "")
    _field(task, "name", str, "task.")
    if task.get("options") is not None:
        options = _field(task, "options", dict, "task.")
        for key, value in options.items():
            if key != "size" or isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
                raise _Bad(f"'task.options' may hold only size (1-256), not {key}={value!r:.40}")
    halting = _field(meta, "halting", dict, "")
    if _field(halting, "rule", str, "halting.") not in RULES:
        raise _Bad(f"'halting.rule' is {halting['rule']!r:.40}, not one of {', '.join(RULES)}")
    _int(halting, "max_steps", "halting.", 1, MAX_STEPS_BOUND)
    if halting.get("policy") is not None:
        _check_policy(_field(halting, "policy", str, "halting."))
    if _field(meta, "precision", str, "") not in GRAPH_PRECISIONS:
        raise _Bad(f"'precision' is {meta['precision']!r:.40}, not one of {', '.join(GRAPH_PRECISIONS)}")
    batch = _field(meta, "batch", dict, "")
    if not _field(batch, "dynamic", bool, "batch."):
        _int(batch, "size", "batch.", 1, 1 << 20)
    graphs = _field(meta, "graphs", dict, "")
    for name in ("init", "step"):
        graph = _field(graphs, name, dict, "graphs.")
        _inside(export_dir, graph.get("file"), f"graphs.{name}.file")
        for side in ("inputs", "outputs"):
            for i, tensor in enumerate(_field(graph, side, list, f"graphs.{name}.")):
                where = f"graphs.{name}.{side}[{i}]."
                _field(tensor, "name", str, where)
                _field(tensor, "shape", list, where)
                if _field(tensor, "dtype", str, where) not in TENSOR_DTYPES:
                    raise _Bad(f"'{where}dtype' is {tensor['dtype']!r:.40}, not one of {', '.join(TENSOR_DTYPES)}")
    if len(graphs["step"]["inputs"]) < 2:
        raise _Bad("'graphs.step.inputs' lacks the state inputs")
    # Free-form parts the typed metadata carries along: each must at least be the right container.
    for where, node, kind in (("source", meta, dict), ("software", meta, dict), ("versions", meta, dict),
                              ("engines", meta, list), ("model.config", model, dict),
                              ("halting.calibration", halting, dict)):
        key = where.rsplit(".", 1)[-1]
        if node.get(key) is not None:
            _field(node, key, kind, where[: -len(key)])
    if meta.get("source") is not None and meta["source"].get("info") is not None:
        _field(meta["source"], "info", dict, "source.")
    if model.get("puzzle_emb_len") is not None:
        _int(model, "puzzle_emb_len", "model.", 0, MAX_SEQ_LEN)
    if not all(isinstance(engine, dict) for engine in meta.get("engines") or []):
        raise _Bad("'engines' must list objects")
    for i, engine in enumerate(meta.get("engines") or []):
        _inside(export_dir, engine.get("file") if isinstance(engine, dict) else None, f"engines[{i}].file")
    validation = meta.get("validation")
    if validation is not None and not isinstance(validation, dict):
        raise _Bad("'validation' must be an object or null")
    solve = meta.get("solve")
    if solve is not None:
        _inside(export_dir, _field(meta, "solve", dict, "").get("file"), "solve.file")
    if meta.get("int8") is not None:
        _inside(export_dir, _field(meta, "int8", dict, "").get("file"), "int8.file")
    if meta.get("programs") is not None:
        for format, record in _field(meta, "programs", dict, "").items():
            where = f"programs.{format}."
            if format not in PROGRAM_FORMATS:
                raise _Bad(f"'programs' holds {format!r:.40}, not one of {', '.join(PROGRAM_FORMATS)}")
            for graph in ("init", "step"):
                _inside(export_dir, _field(record, graph, str, where), f"{where}{graph}")
            _int(record, "width", where, 1, 1 << 16)
    if meta.get("files") is not None:
        _check_file_records(meta["files"])


def _check_file_records(records: Any) -> None:
    if not isinstance(records, dict):
        raise _Bad("'files' must be an object")
    for name, record in records.items():
        _inside(None, name, f"files.{name}")
        _int(record, "bytes", f"files.{name}.", 0, 1 << 50)
        digest = _field(record, "sha256", str, f"files.{name}.")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise _Bad(f"'files.{name}.sha256' is not a sha256 in hex")


def check_files(export_dir: Path, meta: ExportMetadata) -> None:
    """Every file the metadata names is recorded in it, with the size and sha256 it has on disk.

    Sizes are checked at every read; a sha256 only where the file changed since it was last hashed
    (its stamp in VERIFIED_FILE, see `file_sha256`), so a start-up hashes nothing it hashed before."""
    if not meta.files:
        raise TrmEdgeError(f"{export_dir / METADATA_FILE} records no sizes and hashes of its files (an export "
                           "written before trm-edge kept them): export again")
    named = meta.file_names()
    unrecorded = [name for name in named if name not in meta.files]
    if unrecorded:
        raise TrmEdgeError(f"{export_dir / unrecorded[0]} does not belong to this export ({METADATA_FILE} has no "
                           "record of it): export again")
    stamps = _read_stamps(export_dir)
    present = {name: record for name, record in meta.files.items() if name in named or (export_dir / name).exists()}
    for name, record in present.items():  # validation.npz may go (the runtime then trusts no lower precision)
        path = export_dir / name
        try:
            size = path.stat().st_size
        except OSError:
            raise TrmEdgeError(f"{path} is missing ({METADATA_FILE} records it): export again") from None
        if size != record["bytes"]:
            raise TrmEdgeError(f"{path} does not belong to this export ({size:,} bytes; {METADATA_FILE} records "
                               f"{record['bytes']:,}): export again")
        if file_sha256(path) != record["sha256"]:
            raise TrmEdgeError(f"{path} does not belong to this export (its sha256 is not the one {METADATA_FILE} "
                               "records): export again")
    if _stamps(export_dir, present) != stamps:
        _write_stamps(export_dir, present)


# A file's sha256 by its state on disk: (device, inode, size, mtime, ctime). Any write to a file sets
# its ctime to the time of the write, and no user call sets a ctime back, so a file whose state is
# the one it had when it was hashed still has those bytes: hashed once, in this process or (through
# VERIFIED_FILE, a cache beside trm_edge.json) in an earlier one. A copied or replaced file is a new
# inode with a new ctime, and is hashed again. This guards against files mixed by accident (an
# interrupted copy, a file from another export), not against someone forging the cache.
# Kernels before ~6.13 keep ctime at a clock tick (several ms): a same-size rewrite within a tick of
# the hashing keeps the state (git's "racy clean"), so a file changed less than RACY_NS before it
# was hashed is not stamped: the next start-up hashes it again (and, hashed later, stamps it).
VERIFIED_FILE = ".trm_edge.verified"
RACY_NS = 2_000_000_000
_HASHED: dict[tuple[int, ...], str] = {}
_HASHED_AT: dict[tuple[int, ...], int] = {}  # when this process hashed a state (ns, the clock ctime uses)
_clock = time.time_ns


def _state(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: Path) -> str:
    """`path`'s sha256, hashed once per file state (see above)."""
    key = _state(path)
    if key not in _HASHED:
        _HASHED_AT[key] = _clock()
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (hashlib.file_digest is Python 3.11+, and
    JetPack 6 runs 3.10). The one file hasher: checkpoint.file_sha256 uses it too."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_stamps(export_dir: Path) -> dict[str, list[Any]]:
    """The states and hashes an earlier process checked (into `_HASHED`); a damaged cache is no cache."""
    try:
        stamps = json.loads((export_dir / VERIFIED_FILE).read_text(encoding="utf-8"))
        for state_and_hash in stamps.values():
            *state, digest = state_and_hash
            _HASHED[tuple(int(v) for v in state)] = str(digest)
        return dict(stamps)
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _stamps(export_dir: Path, files: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """The states worth keeping: not those hashed within RACY_NS of their last change (see above)."""
    stamps = {}
    for name, record in files.items():
        state = _state(export_dir / name)
        if _HASHED_AT.get(state, state[-1] + RACY_NS) - state[-1] >= RACY_NS:  # stamped earlier: settled
            stamps[name] = [*state, record["sha256"]]
    return stamps


def _write_stamps(export_dir: Path, files: dict[str, dict[str, Any]]) -> None:
    # Only a cache: a read-only export is hashed at each start.
    with contextlib.suppress(TrmEdgeError, OSError), no_fault_points():
        atomic_write(export_dir / VERIFIED_FILE, json.dumps(_stamps(export_dir, files)))


def file_records(export_dir: Path, meta: ExportMetadata) -> dict[str, dict[str, Any]]:
    """{name: {bytes, sha256}} of every file `meta` names, and validation.npz where the export has it."""
    names = meta.file_names() + ([VALIDATION_FILE] if (export_dir / VALIDATION_FILE).is_file() else [])
    records = {}
    for name in names:
        path = export_dir / name
        try:
            records[name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        except OSError as exc:
            raise TrmEdgeError(f"cannot record {path} in {METADATA_FILE}: {exc.strerror or exc}") from None
    return records


def _check_policy(spec: str) -> None:
    from trm_edge.contract.halting_policy import parse_policy

    try:
        policy = parse_policy(spec)
    except TrmEdgeError as exc:
        raise _Bad(f"'halting.policy': {exc}") from None
    for steps in (policy.fixed_steps, policy.stable_steps, policy.step_cap):
        if steps is not None and steps > MAX_STEPS_BOUND:
            raise _Bad(f"'halting.policy' {spec!r:.40} asks for more than {MAX_STEPS_BOUND} steps")


def write_engine_record(export_dir: str | Path, record: dict[str, Any], loaded: ExportMetadata) -> ExportMetadata:
    """Add (or replace, by file name) an engine's entry in trm_edge.json, if the export is still the
    one `loaded` (read before the build); returns the metadata as it now is (the next record's `loaded`)."""
    current = read_metadata(export_dir)
    refuse_if_replaced(export_dir, loaded, current, "building the engine", "build-engine")
    write_metadata(export_dir, current.with_engine(record))
    return read_metadata(export_dir)


def refuse_if_replaced(export_dir: str | Path, loaded: ExportMetadata, current: ExportMetadata, doing: str,
                       again: str) -> None:
    """Work that read an export, ran for minutes and now records its result there (an engine, a
    calibration) must find the export it read: write_metadata hashes what is on disk, so the result
    of the old model written into a re-export would look consistent."""
    if current.files != loaded.files or current.source.get("sha256") != loaded.source.get("sha256"):
        raise TrmEdgeError(f"the export at {export_dir} changed while {doing} (exported again meanwhile?): run "
                           f"{again} again")


def write_metadata(export_dir: str | Path, meta: ExportMetadata, files_here: bool = True) -> Path:
    """The one writer of trm_edge.json (export, engine builds and calibration all go through it): it
    records the size and sha256 of every file the metadata names, as they are now. `files_here=False`
    for a copy of the metadata away from its files (a Triton repository's solver model)."""
    export_dir = Path(export_dir)
    meta = meta.with_files(file_records(export_dir, meta) if files_here else {})
    path = export_dir / METADATA_FILE
    # Atomic: a full disk or a crash mid-write leaves the previous file, never a truncated one.
    atomic_write(path, json.dumps(_finite(meta.to_dict()), indent=2, allow_nan=False) + "\n")
    if files_here:
        # Files written more than RACY_NS ago (an engine build's graphs) need no hashing at the next
        # start-up; those just written are hashed once more there (their ctime is too recent to stamp).
        _write_stamps(export_dir, meta.files)
    return path


def _finite(node: Any) -> Any:
    """JSON has no NaN or infinity: a non-finite number (a broken model's validation diff) is null."""
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    return node


def puzzle_names(meta: ExportMetadata) -> list[str]:
    """The names of the model's puzzle identifiers (index = identifier) carried from its checkpoint
    (ARC: one per version of a task); empty when it carries none."""
    names = meta.puzzle_names
    expected = meta.model.num_puzzle_identifiers
    if names and len(names) != expected:
        raise TrmEdgeError(
            f"this export's puzzle names do not match its {expected} puzzle identifiers: export the checkpoint again"
        )
    return names
