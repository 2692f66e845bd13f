"""trm-edge checkpoints: one `.safetensors` file, the model config in its metadata.

Loading never unpickles anything: safetensors holds raw tensors and a JSON header only. Wherever a
checkpoint is read, `shipped:NAME` names a model shipped in the package (trm_edge/shipped.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from trm_edge import __version__
from trm_edge.atomic import atomic_file
from trm_edge.config import ModelConfig
from trm_edge.contract.export_dir import sha256_file
from trm_edge.errors import CheckpointError, ConfigError
from trm_edge.model import RecursiveReasoningModel
from trm_edge.shipped import checkpoint_path

FORMAT_NAME = "trm-edge-checkpoint"
FORMAT_VERSION = 1
# Files that are Python pickles (torch.save) start with one of these.
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def save_checkpoint(model: RecursiveReasoningModel, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write the model's weights and config (plus free-form provenance `info`) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": model.config.to_json(),
        "info": json.dumps({"trm_edge_version": __version__, **(info or {})}, sort_keys=True),
    }
    with atomic_file(path) as handle:  # never a half-written checkpoint
        handle.write(save(tensors, metadata=metadata))
    return path


def read_header(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The config and provenance of a checkpoint (a path or shipped:NAME), without loading its tensors."""
    path = _existing(path)
    meta = _open(path, lambda f: f.metadata())
    return _config_from_metadata(path, meta), json.loads((meta or {}).get("info", "{}"))


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> RecursiveReasoningModel:
    """Rebuild the model a checkpoint (a path, or shipped:NAME) describes, with its weights, in eval mode.

    Every tensor must be present with the shape the config implies: a missing, extra or
    mis-shaped tensor is an error that names it.
    """
    path = _existing(path)

    def read(f: Any) -> tuple[dict[str, str] | None, dict[str, torch.Tensor]]:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)

    meta, tensors = _open(path, read)
    config = _config_from_metadata(path, meta)
    model = RecursiveReasoningModel(config)
    check_state_dict(model, tensors, source=str(path))
    model.load_state_dict(tensors, strict=True)
    stored = tensors["lm_head.weight"].dtype
    model.to(device=device, dtype=dtype or stored)
    info = json.loads(meta.get("info", "{}")) if meta else {}
    model.info = info  # provenance travels with the loaded model
    return model.eval()


def check_state_dict(model: RecursiveReasoningModel, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointError naming every missing, unexpected or mis-shaped tensor."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = []
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f"missing tensors: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected tensors: {', '.join(extra)}")
    for key in sorted(set(expected) & set(tensors)):
        if tuple(tensors[key].shape) != expected[key]:
            problems.append(f"tensor {key!r} has shape {tuple(tensors[key].shape)}, the config implies {expected[key]}")
    if problems:
        hint = ""
        if missing and any(k.startswith(("model.", "_orig_mod.")) for k in extra):
            hint = "\nthis looks like an official TinyRecursiveModels/HRM state dict: run 'trm-edge convert'"
        raise CheckpointError(f"{source} does not match its model config:\n  " + "\n  ".join(problems) + hint)


def file_sha256(path: str | Path) -> str:
    """A checkpoint's sha256 (uncached: a checkpoint is read once per command)."""
    return sha256_file(path)


def _existing(path: str | Path) -> Path:
    path = checkpoint_path(path)  # shipped:NAME, or a path as given (an unknown shipped name is one line)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(
            f"{path} is a PyTorch pickle (torch.save), not a trm-edge .safetensors checkpoint; "
            f"if it is an official TinyRecursiveModels/HRM checkpoint, import it with "
            f"'trm-edge convert {path} -o model.safetensors'"
        )
    return path


def _open(path: Path, read: Any) -> Any:
    try:
        with safe_open(str(path), framework="pt") as f:
            return read(f)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable .safetensors file (truncated or another format?): {exc}"
        ) from None


def _config_from_metadata(path: Path, meta: dict[str, str] | None) -> ModelConfig:
    if not meta or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path} is a safetensors file but not a trm-edge checkpoint (no trm-edge config in its "
            "metadata); official checkpoints are imported with 'trm-edge convert'"
        )
    version = meta.get("format_version", "?")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this trm-edge ({__version__}) reads "
            f"version {FORMAT_VERSION}: use the trm-edge release that wrote it, or re-export it"
        )
    try:
        return ModelConfig.from_json(meta.get("config", ""))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
