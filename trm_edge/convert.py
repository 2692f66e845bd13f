"""Import checkpoints written by the official TinyRecursiveModels / HRM training scripts.

Those are `torch.save(state_dict)` pickles with keys under `[_orig_mod.]model.inner.`, and
their architecture lives in a separate `all_config.yaml` (and the data sizes in the dataset's
`dataset.json`). We read the pickle with `weights_only=True`, infer from the tensors everything
they imply (sizes, layers, mixer, learned positions), take the rest from the config files or
explicit options, and refuse anything inconsistent with a message that says what disagrees.
"""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from trm_edge.checkpoint import check_state_dict, file_sha256
from trm_edge.config import ModelConfig, check_puzzle_emb_len, swiglu_intermediate
from trm_edge.errors import CheckpointError, ConfigError
from trm_edge.model import RecursiveReasoningModel

PREFIXES = ("_orig_mod.", "model.inner.")
# Official parameter names -> ours. Applied as substring replacements on the stripped key.
RENAMES = (
    ("embed_tokens.embedding_weight", "embed_tokens.weight"),
    ("embed_pos.embedding_weight", "embed_pos.weight"),
    ("puzzle_emb.weights", "puzzle_emb.weight"),
    ("L_level.", "L_net."),
    ("H_level.", "H_net."),
    (".self_attn.", ".attn."),
)
_EXPANSION_CANDIDATES = [x / 2 for x in range(1, 33)]


def load_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official `.pt` state dict safely and return it with our key names (float32)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects other than tensors ({first[:200]}). "
            "trm-edge loads checkpoints with weights_only=True and never runs code from a pickle; "
            "re-save the weights alone with torch.save(model.state_dict())"
        ) from None
    except Exception as exc:  # zip/pickle corruption surfaces as many exception types
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or another format?): "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    state = _find_state_dict(obj)
    if state is None:
        raise CheckpointError(f"{path} holds no state dict of tensors (got {type(obj).__name__})")

    out: dict[str, torch.Tensor] = {}
    foreign = []
    for key, tensor in state.items():
        name = key
        for prefix in PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if name == key or not key.rstrip(".").count("."):
            foreign.append(key)
            continue
        for old, new in RENAMES:
            name = name.replace(old, new)
        out[name] = tensor.detach().to(torch.float32)
    if foreign and not out:
        raise CheckpointError(
            f"{path} has no tensors under 'model.inner.' (first keys: {', '.join(list(state)[:4])}): "
            "is this a TinyRecursiveModels/HRM checkpoint? trm-edge checkpoints (.safetensors) "
            "need no conversion"
        )
    if foreign:
        raise CheckpointError(f"{path} has tensors outside 'model.inner.': {', '.join(foreign[:8])}")
    return out


def _check_ranks(tensors: dict[str, torch.Tensor]) -> None:
    """Matrices must be matrices and vectors vectors before any shape is read from them."""
    for name, tensor in tensors.items():
        matrix = name.endswith(
            (
                "proj.weight",
                "embed_tokens.weight",
                "lm_head.weight",
                "q_head.weight",
                "puzzle_emb.weight",
                "embed_pos.weight",
            )
        )
        vector = name.endswith(("_init", "q_head.bias"))
        if (matrix and tensor.ndim != 2) or (vector and tensor.ndim != 1):
            raise CheckpointError(
                f"tensor {name} has shape {tuple(tensor.shape)}; a {'matrix' if matrix else 'vector'} is expected: "
                "the checkpoint's tensors were reshaped or it is not an official TinyRecursiveModels/HRM checkpoint"
            )


def read_official_config(config_yaml: str | Path | None, dataset_json: str | Path | None) -> dict[str, Any]:
    """The `arch:` section of an official all_config.yaml, plus the dataset sizes, as one dict."""
    merged: dict[str, Any] = {}
    if config_yaml is not None:
        try:
            doc = yaml.safe_load(Path(config_yaml).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {config_yaml}: {exc}") from None
        arch = doc.get("arch", doc) if isinstance(doc, dict) else None
        if not isinstance(arch, dict):
            raise ConfigError(f"{config_yaml} has no 'arch:' mapping (is it the official all_config.yaml?)")
        merged.update(_resolve_interpolations(arch))
    if dataset_json is not None:
        try:
            data = json.loads(Path(dataset_json).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ConfigError(f"cannot read dataset metadata {dataset_json}: {str(exc)[:200]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{dataset_json} is not the official dataset.json (a JSON object)")
        for key in ("seq_len", "vocab_size", "num_puzzle_identifiers"):
            if key in data:
                merged[key] = data[key]
    return merged


def build_config(tensors: dict[str, torch.Tensor], official: dict[str, Any]) -> ModelConfig:
    """Combine what the tensors imply with what the official config says; refuse disagreements."""
    cfg: dict[str, Any] = {}
    given = dict(official)
    _arch(cfg, given, tensors)
    _embeddings(cfg, given, official, tensors)
    _layers(cfg, given, tensors)
    _mixer_and_positions(cfg, given, tensors)
    cfg["expansion"] = _expansion(tensors, cfg, given.get("expansion"))
    _settings(cfg, given)
    _task(cfg, given)
    return ModelConfig(**cfg)


def _arch(cfg: dict[str, Any], given: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """TRM or HRM: HRM has a separate H net; the config's architecture name must agree."""
    name = str(given.pop("name", "")) or None
    arch_from_tensors = "hrm" if any(k.startswith("H_net.") for k in tensors) else "trm"
    if name is not None:
        cfg["arch"] = _arch_from_name(name)
        if cfg["arch"] != arch_from_tensors:
            raise ConfigError(
                f"config names {name} but the tensors are those of a {arch_from_tensors.upper()}"
                f" ({'separate' if arch_from_tensors == 'hrm' else 'no'} H_level)"
            )
    else:
        cfg["arch"] = arch_from_tensors


def _embeddings(
    cfg: dict[str, Any], given: dict[str, Any], official: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> None:
    """Vocabulary and hidden size from the token embedding; the puzzle embedding and its prefix length."""
    if "embed_tokens.weight" not in tensors:
        raise CheckpointError("checkpoint has no token embedding (embed_tokens.embedding_weight)")
    _check_ranks(tensors)
    vocab, hidden = tensors["embed_tokens.weight"].shape
    _agree(given, "vocab_size", vocab, "embed_tokens")
    _agree(given, "hidden_size", hidden, "embed_tokens")
    cfg.update(vocab_size=int(vocab), hidden_size=int(hidden))

    if "puzzle_emb.weight" in tensors:
        num_ids, ndim = tensors["puzzle_emb.weight"].shape
        _agree(given, "num_puzzle_identifiers", num_ids, "puzzle_emb.weights")
        _agree(given, "puzzle_emb_ndim", ndim, "puzzle_emb.weights")
        cfg.update(num_puzzle_identifiers=int(num_ids), puzzle_emb_ndim=int(ndim))
    else:
        _agree(given, "puzzle_emb_ndim", 0, "the absence of puzzle_emb.weights")
        cfg.update(num_puzzle_identifiers=int(given.get("num_puzzle_identifiers", 1)), puzzle_emb_ndim=0)

    ndim = cfg["puzzle_emb_ndim"]
    default_len = math.ceil(ndim / hidden)
    if cfg["arch"] == "trm":
        # TRM: puzzle_emb_len is a config entry (official default 16); 0 means ceil(ndim / hidden).
        emb_len = int(given.get("puzzle_emb_len", 16 if "name" in official else default_len))
        check_puzzle_emb_len(ndim, emb_len)
        cfg["puzzle_emb_len"] = emb_len if emb_len != 0 else default_len
    else:
        cfg["puzzle_emb_len"] = default_len


def _layers(cfg: dict[str, Any], given: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Layer counts of the L (and HRM's H) net, from the layer indices present."""
    for net in ("L", "H"):
        layers = {int(m.group(1)) for k in tensors if (m := re.match(rf"{net}_net\.layers\.(\d+)\.", k))}
        count = max(layers) + 1 if layers else 0
        if net == "L" or cfg["arch"] == "hrm":  # TRM's config carries an unused H_layers
            _agree(given, f"{net}_layers", count, f"{net}_level.layers")
        cfg[f"{net}_layers"] = count
    if cfg["L_layers"] == 0:
        raise CheckpointError("checkpoint has no L_level layers")


def _mixer_and_positions(cfg: dict[str, Any], given: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Token mixing (attention or MLP), positions, and the sequence length they imply."""
    cfg["mlp_t"] = any(".mlp_t." in k for k in tensors)
    if "mlp_t" in given and bool(given["mlp_t"]) != cfg["mlp_t"]:
        raise ConfigError(f"config says mlp_t: {given['mlp_t']} but the tensors say {cfg['mlp_t']}")

    total_len = None
    if "embed_pos.weight" in tensors:
        total_len = int(tensors["embed_pos.weight"].shape[0])
        cfg["pos_encodings"] = "learned"
        if given.get("pos_encodings", "learned") != "learned":
            raise ConfigError(
                f"config says pos_encodings: {given['pos_encodings']} but the checkpoint "
                "has learned position embeddings (embed_pos)"
            )
    elif "pos_encodings" in given:
        if given["pos_encodings"] == "learned":
            raise ConfigError("config says pos_encodings: learned but the checkpoint has no embed_pos tensor")
        cfg["pos_encodings"] = given["pos_encodings"]
    elif cfg["mlp_t"]:
        cfg["pos_encodings"] = "none"  # an MLP mixer reads no rotary table
    if cfg["mlp_t"]:
        total_len = int(tensors["L_net.layers.0.mlp_t.gate_up_proj.weight"].shape[1])
    if total_len is not None:
        seq_len = total_len - cfg["puzzle_emb_len"]
        _agree(given, "seq_len", seq_len, "the token-mixing / position tensors")
        cfg["seq_len"] = seq_len
    elif "seq_len" in given:
        cfg["seq_len"] = int(given["seq_len"])


def _settings(cfg: dict[str, Any], given: dict[str, Any]) -> None:
    """What only the config can say (cycles, heads, halting), copied; the halting rule from the arch."""
    for key in (
        "H_cycles",
        "L_cycles",
        "num_heads",
        "halt_max_steps",
        "halt_exploration_prob",
        "rms_norm_eps",
        "rope_theta",
        "forward_dtype",
    ):
        if key in given:
            cfg[key] = given[key]
    if cfg["mlp_t"]:
        cfg.setdefault("num_heads", 1)
    if cfg["arch"] == "hrm" or not given.get("no_ACT_continue", True):
        cfg["halt_rule"] = "q_halt>q_continue"
    else:
        cfg["halt_rule"] = "q_halt>0"


def _task(cfg: dict[str, Any], given: dict[str, Any]) -> None:
    """Everything the tensors could not tell must have been given; then the task codec."""
    needed = {
        "seq_len": "--set seq_len=N or --dataset dataset.json",
        "H_cycles": "--set H_cycles=N or --config all_config.yaml",
        "L_cycles": "--set L_cycles=N or --config all_config.yaml",
        "num_heads": "--set num_heads=N or --config all_config.yaml",
        "pos_encodings": "--set pos_encodings=rope|learned|none or --config all_config.yaml",
    }
    missing = [f"{k} ({how})" for k, how in needed.items() if k not in cfg]
    if missing:
        raise ConfigError("the checkpoint's tensors do not say these, give them: " + "; ".join(missing))
    from trm_edge.tasks.registry import TASKS, task_for_shape

    cfg["task"] = str(given.get("task", task_for_shape(cfg["seq_len"], cfg["vocab_size"])))
    side = math.isqrt(cfg["seq_len"])
    if getattr(TASKS.get(cfg["task"]), "square", False) and side * side == cfg["seq_len"] and side != 30:
        cfg["task_options"] = {"size": side}  # a square canvas other than the official 30x30


def identifiers_beside(dataset_json: str | Path | None) -> Path | None:
    """The official `identifiers.json` of a dataset: in the dataset folder, the parent of the
    `<split>/dataset.json` that --dataset names. None when there is none."""
    if dataset_json is None:
        return None
    candidate = Path(dataset_json).resolve().parent.parent / "identifiers.json"
    return candidate if candidate.is_file() else None


def read_puzzle_names(identifiers_json: str | Path, num_puzzle_identifiers: int) -> list[str]:
    """The names of a model's puzzle identifiers (index = identifier) from the official
    `identifiers.json`, checked against the embedding's row count."""
    path = Path(identifiers_json)
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read puzzle names from {path}: {str(exc)[:200]}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path} is not the official identifiers.json (a JSON list of names, index = identifier)")
    if len(names) != num_puzzle_identifiers:
        raise ConfigError(
            f"{path} names {len(names)} puzzle identifiers but the checkpoint's embedding has "
            f"{num_puzzle_identifiers} rows: give the identifiers.json of the dataset this model was trained on"
        )
    return names


def convert_official(
    path: str | Path,
    config_yaml: str | Path | None = None,
    dataset_json: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    identifiers_json: str | Path | None = None,
) -> RecursiveReasoningModel:
    """An official checkpoint as a trm-edge model (float32, eval mode, provenance in `.info`).

    The names of its puzzle identifiers (ARC: one per augmented version of a task) come from
    `identifiers_json`, else from the `identifiers.json` beside the dataset, and are kept in the
    info (`puzzle_names`): the runtime asks each version of an ARC task by them."""
    path = Path(path)
    tensors = load_official_state_dict(path)
    official = read_official_config(config_yaml, dataset_json)
    official.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config = build_config(tensors, official)
    model = RecursiveReasoningModel(config)
    check_state_dict(model, tensors, source=str(path))
    model.load_state_dict(tensors, strict=True)
    model.info = {
        "source": {
            "format": "official-torch-state-dict",
            "file": path.name,
            "sha256": file_sha256(path),
            "config": Path(config_yaml).name if config_yaml else None,
            "dataset": Path(dataset_json).name if dataset_json else None,
        },
        "converted_by": "trm-edge convert",
    }
    names_file = Path(identifiers_json) if identifiers_json is not None else identifiers_beside(dataset_json)
    if names_file is not None and config.puzzle_emb_ndim > 0:
        model.info["puzzle_names"] = read_puzzle_names(names_file, config.num_puzzle_identifiers)
        model.info["source"]["identifiers"] = names_file.name
    return model.eval()


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "ema"):
            found = _find_state_dict(obj.get(key))
            if found is not None:
                return found
    return None


def _arch_from_name(name: str) -> str:
    # e.g. recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1, hrm.hrm_act_v1@Hierarchical...
    module = name.split("@")[0]
    if module in ("recursive_reasoning.trm",):
        return "trm"
    if module in ("recursive_reasoning.hrm", "hrm.hrm_act_v1"):
        return "hrm"
    raise ConfigError(
        f"unsupported architecture {name!r}: trm-edge runs recursive_reasoning.trm (TRM) and "
        "recursive_reasoning.hrm / hrm.hrm_act_v1 (HRM)"
    )


def _agree(given: dict[str, Any], key: str, actual: Any, where: str) -> None:
    if key in given and given[key] is not None and int(given[key]) != int(actual):
        raise ConfigError(f"config says {key}: {given[key]} but {where} implies {actual}")


def _expansion(tensors: dict[str, torch.Tensor], cfg: dict[str, Any], given: Any) -> float:
    """The MLP expansion that sizes every SwiGLU in the checkpoint as found."""
    widths = {}
    inner = tensors["L_net.layers.0.mlp.gate_up_proj.weight"].shape[0] // 2
    widths[cfg["hidden_size"]] = inner
    if cfg["mlp_t"]:
        w = tensors["L_net.layers.0.mlp_t.gate_up_proj.weight"]
        widths[int(w.shape[1])] = w.shape[0] // 2

    def fits(e: float) -> bool:
        return all(swiglu_intermediate(width, e) == n for width, n in widths.items())

    if given is not None:
        if not fits(float(given)):
            raise ConfigError(f"config says expansion: {given} but the MLP weights imply another")
        return float(given)
    for e in _EXPANSION_CANDIDATES:
        if fits(e):
            return e
    raise ConfigError("cannot infer the MLP expansion from the weights: pass --expansion")


def _resolve_interpolations(arch: dict[str, Any]) -> dict[str, Any]:
    """Resolve hydra's `${.key}` references to sibling entries (e.g. puzzle_emb_ndim: ${.hidden_size})."""
    out = dict(arch)
    for key, value in arch.items():
        if isinstance(value, str) and (m := re.fullmatch(r"\$\{\.(\w+)\}", value.strip())):
            if m.group(1) not in arch:
                raise ConfigError(f"config entry {key}: {value} refers to a missing key")
            out[key] = arch[m.group(1)]
    return out
