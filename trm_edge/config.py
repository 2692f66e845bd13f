"""The model configuration: a plain dataclass that travels in the checkpoint's metadata.

It holds everything needed to rebuild the network (sizes, cycles, positions, mixer), to run it
(halting rule, max steps) and to read and write its puzzles (task codec), so a checkpoint is the
only file any later stage needs.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from trm_edge.errors import ConfigError

ARCHS = ("trm", "hrm")
POSITIONS = ("rope", "learned", "none")
HALT_RULES = ("q_halt>0", "q_halt>q_continue")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ModelConfig:
    """Architecture and run settings of one TRM or HRM.

    Names follow the official code where users already know them (H_cycles, L_cycles,
    puzzle_emb_ndim, ...), so an official `all_config.yaml` maps onto this one to one.
    """

    arch: Literal["trm", "hrm"]
    seq_len: int
    vocab_size: int
    hidden_size: int
    H_cycles: int
    L_cycles: int
    L_layers: int
    H_layers: int = 0  # HRM only: TRM reuses the one L net for the H update
    num_heads: int = 1
    expansion: float = 4.0
    pos_encodings: Literal["rope", "learned", "none"] = "rope"
    mlp_t: bool = False  # token mixing by an MLP across positions instead of attention
    puzzle_emb_ndim: int = 0
    puzzle_emb_len: int = 0  # prefix tokens holding the puzzle embedding; 0 with ndim 0
    num_puzzle_identifiers: int = 1
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    halt_max_steps: int = 16
    halt_rule: Literal["q_halt>0", "q_halt>q_continue"] = "q_halt>0"
    halt_exploration_prob: float = 0.1
    forward_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    # "int8": the reasoning nets' products run int8-rounded (trm_edge/quantization.py), as an int8
    # export computes them; the checkpoint then holds each product's input scale.
    quantize: Literal["none", "int8"] = "none"
    task: str = "generic"  # codec name: sudoku, maze, arc or generic (raw tokens)
    task_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # --- derived sizes -------------------------------------------------------------------
    @property
    def total_len(self) -> int:
        """Positions in the latent state: puzzle-embedding prefix plus the puzzle's tokens."""
        return self.puzzle_emb_len + self.seq_len

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    # --- checks ------------------------------------------------------------------------
    def validate(self) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"invalid model config: {msg}")

        if self.arch not in ARCHS:
            fail(f"arch {self.arch!r} is not one of {', '.join(ARCHS)}")
        if self.pos_encodings not in POSITIONS:
            fail(f"pos_encodings {self.pos_encodings!r} is not one of {', '.join(POSITIONS)}")
        if self.halt_rule not in HALT_RULES:
            fail(f"halt_rule {self.halt_rule!r} is not one of {', '.join(HALT_RULES)}")
        if self.quantize not in ("none", "int8"):
            fail(f"quantize {self.quantize!r} is not one of none, int8")
        if self.forward_dtype not in DTYPES:
            fail(f"forward_dtype {self.forward_dtype!r} is not one of {', '.join(DTYPES)}")
        positive = [
            "seq_len",
            "vocab_size",
            "hidden_size",
            "H_cycles",
            "L_cycles",
            "L_layers",
            "num_heads",
            "halt_max_steps",
            "num_puzzle_identifiers",
        ]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a positive integer, got {value!r}")
        for name in ("puzzle_emb_ndim", "puzzle_emb_len", "H_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fail(f"{name} must be a non-negative integer, got {value!r}")
        if self.expansion <= 0:
            fail(f"expansion must be positive, got {self.expansion}")
        if self.arch == "hrm" and self.H_layers < 1:
            fail("an HRM needs H_layers >= 1 (its H net is separate from its L net)")
        if not self.mlp_t and self.hidden_size % self.num_heads:
            fail(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.pos_encodings == "rope" and not self.mlp_t and self.head_dim % 2:
            fail(f"rope needs an even head dimension, got {self.head_dim}")
        check_puzzle_emb_len(self.puzzle_emb_ndim, self.puzzle_emb_len)
        if self.puzzle_emb_ndim > 0:
            if self.puzzle_emb_len == 0:
                fail("puzzle_emb_ndim > 0 needs puzzle_emb_len >= 1 (use ceil(ndim / hidden))")
            if self.puzzle_emb_ndim > self.puzzle_emb_len * self.hidden_size:
                fail(
                    f"puzzle_emb_ndim {self.puzzle_emb_ndim} does not fit in {self.puzzle_emb_len} "
                    f"prefix tokens of {self.hidden_size}"
                )

    # --- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["quantize"] == "none":  # float checkpoints stay readable by releases before int8
            del data["quantize"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        missing = sorted(f.name for f in fields(cls) if f.name not in data and _required(f))
        if missing:
            raise ConfigError(f"model config lacks required keys: {', '.join(missing)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model config is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError("model config must be a JSON object")
        return cls.from_dict(data)


def _required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def swiglu_intermediate(width: int, expansion: float) -> int:
    """Hidden width of a SwiGLU MLP as the official code sizes it: 2/3 of expansion x width,
    rounded up to a multiple of 256."""
    return math.ceil(round(expansion * width * 2 / 3) / 256) * 256


def check_puzzle_emb_len(ndim: int, length: int) -> None:
    """Prefix tokens exist only to hold a puzzle embedding."""
    if ndim == 0 and length != 0:
        raise ConfigError(
            f"invalid model config: puzzle_emb_ndim is 0 but puzzle_emb_len is {length}: with no "
            "puzzle embedding there are no prefix tokens (the official code crashes on this shape "
            "mismatch); set puzzle_emb_len: 0"
        )
