"""The trainer's full state on disk (`step_N.state.safetensors`): raw and EMA weights, optimiser
moments, every rank's carry, the data position and the random states, so a resumed run reproduces
an uninterrupted one bit for bit."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file

from trm_edge.atomic import atomic_path
from trm_edge.errors import TrmEdgeError
from trm_edge.train.dataset import BatchOrder
from trm_edge.train.recipe import recipe_from_dict

if TYPE_CHECKING:
    from trm_edge.train.trainer import Trainer

STATE_FORMAT = "trm-edge-train-state"


@dataclass
class Carry:
    """Each slot's puzzle, latent state and step count; `halted` slots take a new puzzle next."""

    z_H: torch.Tensor
    z_L: torch.Tensor
    steps: torch.Tensor
    halted: torch.Tensor
    inputs: torch.Tensor
    labels: torch.Tensor
    ids: torch.Tensor


def save_train_state(trainer: Trainer, path: Path) -> None:
    """Everything a resume needs, in one safetensors file (rank 0 writes every rank's carry)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, t in trainer.model.state_dict().items():
        tensors[f"model.{name}"] = t
    if trainer.ema is not None:
        for name, t in trainer.ema.shadow.items():
            tensors[f"ema.{name}"] = t
    opt = trainer.optimizer.state_dict()
    for idx, entry in opt["state"].items():
        for key, t in entry.items():
            tensors[f"optim.{idx}.{key}"] = t if torch.is_tensor(t) else torch.tensor(t)
    for key, value in asdict(trainer.carry).items():
        tensors[f"carry.{trainer.rank}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors[f"rng.explore.{trainer.rank}"] = trainer.explore_rng.get_state()
    carries = _gather_carries(tensors, trainer.rank, trainer.world)
    if trainer.rank != 0:
        return
    tensors.update(carries)
    meta = {
        "format": STATE_FORMAT, "step": trainer.step, "world": trainer.world,
        "order": {"epoch": trainer.order.epoch, "offset": trainer.order.offset},
        "param_groups": opt["param_groups"], "recipe": trainer.recipe.to_dict(),
    }
    with atomic_path(path) as tmp:  # a kill mid-save leaves the previous state, never a truncated one
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"trm_edge_train_state": json.dumps(meta)})


def load_train_state(trainer: Trainer, path: Path) -> None:
    """Put a saved state back into `trainer` (same recipe, same number of processes)."""
    path = resolve_resume(path)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("trm_edge_train_state", "{}"))
        if meta.get("format") != STATE_FORMAT:
            raise TrmEdgeError(f"{path} is not a trm-edge training state (`step_N.state.safetensors`)")
        if meta["world"] != trainer.world:
            raise TrmEdgeError(f"{path} was written by {meta['world']} processes; resume with the same number "
                               f"(this run has {trainer.world})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    saved = recipe_from_dict(meta["recipe"])
    if saved.model != trainer.recipe.model or saved.train.global_batch_size != trainer.settings.global_batch_size:
        raise TrmEdgeError(f"{path} was trained with another model or batch size than this recipe")
    trainer.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if trainer.ema is not None:
        for name in trainer.ema.shadow:
            trainer.ema.shadow[name] = tensors[f"ema.{name}"].to(trainer.device)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = t.to(trainer.device) if t.dim() else t
    groups = meta["param_groups"]
    for g in groups:
        g["betas"] = tuple(g["betas"])
    trainer.optimizer.load_state_dict({"state": state, "param_groups": groups})
    fields = {k.split(".", 2)[2]: v.to(trainer.device) for k, v in tensors.items()
              if k.startswith(f"carry.{trainer.rank}.")}
    trainer.carry = Carry(**fields)
    torch.set_rng_state(tensors["rng.torch"])
    trainer.explore_rng.set_state(tensors[f"rng.explore.{trainer.rank}"])
    trainer.order = BatchOrder(len(trainer.train_split), trainer.settings.global_batch_size,
                               trainer.settings.seed, meta["order"]["epoch"], meta["order"]["offset"])
    trainer.step = int(meta["step"])


def resolve_resume(path: Path) -> Path:
    """A state file, or a run folder (its latest state)."""
    if path.is_dir():
        states = sorted((path / "checkpoints").glob("step_*.state.safetensors"))
        if not states:
            raise TrmEdgeError(f"{path} holds no training state (checkpoints/step_*.state.safetensors) to resume")
        return states[-1]
    if not path.is_file():
        raise TrmEdgeError(f"{path}: no such training state or run folder")
    return path


def _gather_carries(tensors: dict[str, torch.Tensor], rank: int, world: int) -> dict[str, torch.Tensor]:
    """Rank 0 writes the state file, so it collects every rank's carry and exploration RNG."""
    mine = {k: v for k, v in tensors.items() if k.startswith((f"carry.{rank}.", f"rng.explore.{rank}"))}
    if world == 1:
        return mine
    gathered: list[dict[str, torch.Tensor] | None] = [None] * world
    dist.all_gather_object(gathered, {k: v.cpu() for k, v in mine.items()})
    out: dict[str, torch.Tensor] = {}
    for part in gathered:
        out.update(part or {})
    return out
