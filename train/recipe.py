"""Recipes: one YAML file holds everything a training run needs besides the data.

    name: sudoku-mlp-cpu-small
    description: ...
    data:   {path: DATA}  or  {generate: {task: sudoku, train: 20000, test: 1000, givens: [30, 40]}}
    model:  ModelConfig fields (sizes, cycles, mixer); seq_len, vocab and puzzle ids come from the data
    train:  TrainSettings fields

Recipes shipped with trm-edge live in `train/recipes/` and are named without the extension;
`--set train.lr=3e-4` overrides any field from the command line.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from trm_edge.errors import ConfigError

RECIPE_DIR = Path(__file__).parent / "recipes"


@dataclass
class TrainSettings:
    global_batch_size: int = 64
    steps: int = 1000  # optimiser steps (one supervision step of every slot in the batch each)
    lr: float = 1e-4
    lr_min_ratio: float = 1.0
    lr_warmup_steps: int = 100
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    optimizer: str = "adamw"  # adamw | adam_atan2
    puzzle_emb_lr: float = 1e-2
    puzzle_emb_weight_decay: float = 0.1
    loss: str = "stablemax"  # stablemax | softmax
    q_learning: bool = False  # HRM's bootstrapped q_continue target (an extra no-grad step)
    ema: bool = False
    ema_rate: float = 0.999
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bfloat16 | float32
    compile: bool = False
    seed: int = 0
    log_interval: int = 10
    eval_interval: int = 500
    eval_examples: int = 1000  # test examples per evaluation (0: all)
    eval_batch_size: int = 256
    checkpoint_interval: int = 0  # 0: at every evaluation
    threads: int = 0  # CPU threads for torch (0: torch's default)
    # Start from these weights instead of random ones: a .safetensors checkpoint, or shipped:NAME
    # (a model shipped with trm-edge); its architecture must be the recipe's.
    init: str = ""
    # "int8": quantization-aware training. The model's products run int8-rounded as an int8 export
    # computes them (trm_edge/quantization.py), their input scales calibrated on the first training
    # puzzles and then tracked; meant as a fine-tune of a float model (init).
    quantize: str = "none"

    def validate(self) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"invalid train settings: {msg}")

        if self.global_batch_size < 1 or self.steps < 1:
            fail("global_batch_size and steps must be positive")
        if self.optimizer not in ("adamw", "adam_atan2"):
            fail(f"optimizer {self.optimizer!r} is not adamw or adam_atan2")
        if self.loss not in ("stablemax", "softmax"):
            fail(f"loss {self.loss!r} is not stablemax or softmax")
        if self.precision not in ("auto", "bfloat16", "float32"):
            fail(f"precision {self.precision!r} is not auto, bfloat16 or float32")
        if self.quantize not in ("none", "int8"):
            fail(f"quantize {self.quantize!r} is not none or int8")
        if not 0 <= self.ema_rate < 1:
            fail("ema_rate must lie in [0, 1)")
        if self.eval_interval < 1 or self.log_interval < 1:
            fail("eval_interval and log_interval must be positive")


@dataclass
class Recipe:
    name: str
    model: dict[str, Any]
    train: TrainSettings
    data: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "data": self.data,
                "model": self.model, "train": asdict(self.train)}


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPE_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"no recipe {str(name_or_path)!r}: give a YAML file or one of: {', '.join(available_recipes())}"
    )


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = recipe_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping with model:, train: and data:")
    return recipe_from_dict(raw, overrides, default_name=path.stem)


def recipe_from_dict(raw: dict[str, Any], overrides: list[str] | None = None, default_name: str = "recipe") -> Recipe:
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        _apply_override(raw, item)
    unknown = set(raw) - {"name", "description", "data", "model", "train"}
    if unknown:
        raise ConfigError(f"unknown recipe sections: {', '.join(sorted(unknown))} (use name, description, data, "
                          "model, train)")
    train_raw = raw.get("train") or {}
    known = {f.name for f in fields(TrainSettings)}
    bad = set(train_raw) - known
    if bad:
        raise ConfigError(f"unknown train settings: {', '.join(sorted(bad))} (known: {', '.join(sorted(known))})")
    settings = TrainSettings(**{k: _coerce(k, v) for k, v in train_raw.items()})
    settings.validate()
    return Recipe(
        name=str(raw.get("name", default_name)),
        description=str(raw.get("description", "")),
        data=raw.get("data") or {},
        model=raw.get("model") or {},
        train=settings,
    )


def _coerce(name: str, value: Any) -> Any:
    # YAML 1.1 reads `1e-4` (no dot) as a string; take numbers as the field's type says.
    kind = next(f.type for f in fields(TrainSettings) if f.name == name)
    try:
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"train.{name} must be a number, got {value!r}") from None
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"train.{name} must be true or false, got {value!r}")
    return value


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """`section.key=value`, the value parsed as YAML (numbers, booleans, lists)."""
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or parts[0] not in ("data", "model", "train"):
        raise ConfigError(f"override {item!r} must look like train.lr=3e-4 or model.hidden_size=256")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)
