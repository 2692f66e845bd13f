"""The training loop: deep supervision with a carry, ACT halting, EMA, checkpoints that resume.

Each optimiser step runs one supervision step on every slot of the batch. A slot keeps its
puzzle and latent state across steps until it halts (its halting head says so, or it reaches
halt_max_steps); then it takes the next puzzle of the data order and restarts from H_init/L_init,
as the official loop does. Gradients flow through the last cycle of the step only (the model does
that in training mode), so a step's memory does not grow with the recursion depth.

Runs on one CPU or GPU, or on several processes under torchrun (DistributedDataParallel; gloo on
CPUs, NCCL on GPUs): every rank takes its own slice of each global batch and keeps its own carry.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml

from trm_edge.checkpoint import save_checkpoint
from trm_edge.config import ModelConfig
from trm_edge.errors import ConfigError, TrmEdgeError
from trm_edge.hardware import cpu_has_native_bf16
from trm_edge.int8_model import calibrate
from trm_edge.model import RecursiveReasoningModel, State
from trm_edge.quantization import set_mode, uncalibrated
from trm_edge.train.arc_eval import arc_pass_at_k
from trm_edge.train.dataset import BatchOrder, DatasetInfo, Split, load_info, load_split
from trm_edge.train.ema import WeightAverage
from trm_edge.train.evaluate import predict, score
from trm_edge.train.losses import IGNORE, answer_loss, answer_stats, continue_loss, halt_loss, q_continue_target
from trm_edge.train.metrics_log import MetricsLog, plot_curves
from trm_edge.train.optim import build_optimizer, lr_at, sign_sgd_rows
from trm_edge.train.recipe import Recipe
from trm_edge.train.train_state import Carry, load_train_state, save_train_state

CALIBRATION_PUZZLES = 64  # training puzzles the int8 input scales start from (train.quantize)

def training_precision(asked: str, device: str) -> str:
    """bfloat16 on a GPU or a CPU that runs it natively; float32 elsewhere, even when a recipe asks
    for bfloat16: autocast would emulate bf16 there and train several times slower (6x on Zen 3)."""
    native = device == "cuda" or (device == "cpu" and cpu_has_native_bf16())
    if asked == "auto":
        return "bfloat16" if native else "float32"
    return "float32" if asked == "bfloat16" and not native else asked


def model_config_for(recipe: Recipe, info: DatasetInfo, precision: str) -> ModelConfig:
    fields = dict(recipe.model)
    taken = {"seq_len", "vocab_size", "num_puzzle_identifiers", "task", "task_options"} & set(fields)
    if taken:
        raise ConfigError(f"model.{sorted(taken)[0]} comes from the dataset; remove it from the recipe")
    fields.setdefault("forward_dtype", precision)
    if recipe.train.quantize != "none":
        fields["quantize"] = recipe.train.quantize
    try:
        return ModelConfig(
            seq_len=info.seq_len, vocab_size=info.vocab_size, num_puzzle_identifiers=info.num_puzzle_identifiers,
            task=info.task, task_options=info.task_options, **fields,
        )
    except TypeError as err:
        raise ConfigError(f"recipe model section: {err}") from None


class Trainer:
    def __init__(self, recipe: Recipe, data: str | Path, out: str | Path, resume: str | Path | None = None,
                 device: str | None = None, quiet: bool = False, command: str = "") -> None:
        self.recipe, self.settings = recipe, recipe.train
        self.data_path, self.out = Path(data), Path(out)
        self.command = command
        self.rank, self.world, self.device = _setup_distributed(device)
        self.quiet = quiet or self.rank != 0
        s = self.settings
        if s.global_batch_size % self.world:
            raise ConfigError(f"global_batch_size {s.global_batch_size} must divide evenly over {self.world} ranks")
        self.local_batch = s.global_batch_size // self.world
        if s.threads:
            torch.set_num_threads(s.threads)
        self.precision = training_precision(s.precision, self.device.type)

        self.info = load_info(self.data_path)
        self.train_split = load_split(self.data_path, "train")
        self.test_split = load_split(self.data_path, "test") if "test" in self.info.splits else None
        self.config = model_config_for(recipe, self.info, self.precision)

        torch.manual_seed(s.seed)
        self.model = RecursiveReasoningModel(self.config).to(self.device)
        if s.init:
            self._init_weights(s.init)
        if self.config.quantize == "int8" and resume is None and uncalibrated(self.model):
            self._calibrate()  # a float start; an int8 start (a second fine-tune) keeps its scales
        set_mode(self.model, tracking=True)  # int8 input scales follow the ranges as the weights move
        self.model.train()
        self.uses_puzzle_emb = self.config.puzzle_emb_ndim > 0
        if self.uses_puzzle_emb:
            # Updated row by row with sign-SGD (optim.sign_sgd_rows), never by the dense optimiser.
            self.model.puzzle_emb.weight.requires_grad_(False)
        dense = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(s.optimizer, dense, s.lr, (s.beta1, s.beta2), s.weight_decay)
        self.ema = WeightAverage(self.model, s.ema_rate) if s.ema else None
        self.step_fn: Any = self.model
        if self.world > 1:
            self.step_fn = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if s.compile:
            self.step_fn = torch.compile(self.step_fn)
        # Exploration draws come from their own generator, so resuming restores them exactly.
        self.explore_rng = torch.Generator().manual_seed(s.seed * 7919 + self.rank)
        self.order = BatchOrder(len(self.train_split), s.global_batch_size, s.seed)
        self.carry = self._empty_carry()
        self.step = 0
        if resume is not None:
            self._load_state(Path(resume))
        self.log = MetricsLog(self.out / "metrics.jsonl", resume_step=self.step if resume else None) \
            if self.rank == 0 else None
        if self.rank == 0:  # the run folder says how it was made: `trm-edge train RUN/recipe.yaml` repeats it
            (self.out / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))

    # --- the carry ------------------------------------------------------------------------
    def _empty_carry(self) -> Carry:
        b, c = self.local_batch, self.config
        state = self.model.initial_state(b, self.device)
        return Carry(
            z_H=state.z_H.float(), z_L=state.z_L.float(),
            steps=torch.zeros(b, dtype=torch.int32, device=self.device),
            halted=torch.ones(b, dtype=torch.bool, device=self.device),
            inputs=torch.zeros(b, c.seq_len, dtype=torch.int64, device=self.device),
            labels=torch.full((b, c.seq_len), IGNORE, dtype=torch.int64, device=self.device),
            ids=torch.zeros(b, dtype=torch.int64, device=self.device),
        )

    def _batch(self, split: Split, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs = torch.from_numpy(split.inputs[index].astype(np.int64))
        labels = torch.from_numpy(split.labels[index].astype(np.int64))
        labels[labels == 0] = IGNORE  # token 0 is padding and carries no loss
        ids = torch.from_numpy(split.puzzle_identifiers[index].astype(np.int64))
        return inputs.to(self.device), labels.to(self.device), ids.to(self.device)

    def _refill(self) -> None:
        """Halted slots take the next puzzles of the data order and restart from the initial state."""
        index = self.order.next()[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]
        inputs, labels, ids = self._batch(self.train_split, index)
        k = self.carry
        h = k.halted
        init = self.model.initial_state(self.local_batch, self.device)
        k.z_H = torch.where(h[:, None, None], init.z_H.float(), k.z_H)
        k.z_L = torch.where(h[:, None, None], init.z_L.float(), k.z_L)
        k.steps = torch.where(h, 0, k.steps)
        k.inputs = torch.where(h[:, None], inputs, k.inputs)
        k.labels = torch.where(h[:, None], labels, k.labels)
        k.ids = torch.where(h, ids, k.ids)

    def _init_weights(self, source: str) -> None:
        """Weights from a checkpoint (train.init): a warm start, e.g. fine-tuning a shipped model."""
        from trm_edge.checkpoint import load_checkpoint
        from trm_edge.shipped import checkpoint_path

        path = checkpoint_path(source)
        if not path.is_file():  # a shipped name that is missing has already said so
            raise ConfigError(f"train.init {source}: no checkpoint there; a recipe that continues another run starts "
                              "from that run's final.safetensors: train that run first, or --set train.init=PATH")
        start = load_checkpoint(path)
        ours, theirs = self.model.state_dict(), start.state_dict()
        # A float start for quantization-aware training has no int8 scales yet (calibrated next).
        scales = {k for k in ours if k.endswith(".input_scale") and k not in theirs}
        differ = [k for k in ours if k not in scales and (k not in theirs or theirs[k].shape != ours[k].shape)]
        if differ or set(theirs) - set(ours):
            raise ConfigError(f"train.init {source}: its architecture is not the recipe's (differs at "
                              f"{', '.join((differ or sorted(set(theirs) - set(ours)))[:4])}); make the model "
                              "section match it")
        self.model.load_state_dict({k: v.to(ours[k].dtype) for k, v in theirs.items()}, strict=not scales)

    def _calibrate(self) -> None:
        """int8 input scales from the largest magnitudes on the first training puzzles, every step."""
        index = np.arange(min(CALIBRATION_PUZZLES, len(self.train_split)))
        inputs, _, ids = self._batch(self.train_split, index)
        calibrate(self.model, inputs, ids if self.config.puzzle_emb_ndim > 0 else None)

    def _autocast(self) -> Any:
        if self.precision == "bfloat16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    # --- one optimiser step -----------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        s, c, k = self.settings, self.config, self.carry
        self._refill()
        lr = lr_at(self.step, s.lr, s.lr_warmup_steps, s.steps, s.lr_min_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        rows = None
        if self.uses_puzzle_emb:
            rows = self.model.puzzle_emb.weight[k.ids].detach().requires_grad_()
        with self._autocast():
            out = self.step_fn(State(k.z_H, k.z_L), k.inputs, k.ids, rows)
        steps = k.steps + 1
        is_last = steps >= c.halt_max_steps
        stats = answer_stats(out.logits, k.labels)
        with torch.no_grad():
            halted = is_last | self.model.halted(out.q_halt, out.q_continue)
            if c.halt_exploration_prob > 0:
                explore = torch.rand(len(steps), generator=self.explore_rng) < c.halt_exploration_prob
                min_steps = torch.randint(2, c.halt_max_steps + 1, (len(steps),), generator=self.explore_rng)
                halted &= steps >= (explore * min_steps).to(self.device)
        a_loss = answer_loss(out.logits, k.labels, s.loss)
        h_loss = halt_loss(out.q_halt, stats.exact)
        c_loss = torch.zeros((), device=self.device)
        if s.q_learning:
            with torch.no_grad(), self._autocast():
                nxt = self.model.step(out.state, k.inputs, k.ids, rows.detach() if rows is not None else None)
            c_loss = continue_loss(out.q_continue, q_continue_target(nxt.q_halt, nxt.q_continue, is_last))
        loss = a_loss + 0.5 * (h_loss + c_loss)
        (loss / s.global_batch_size).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if rows is not None:
            emb_lr = lr / s.lr * s.puzzle_emb_lr if s.lr else s.puzzle_emb_lr
            sign_sgd_rows(self.model.puzzle_emb.weight.data, k.ids, rows.grad, emb_lr, s.puzzle_emb_weight_decay)
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        k.z_H, k.z_L = out.state.z_H.detach().float(), out.state.z_L.detach().float()
        k.steps, k.halted = steps, halted

        with torch.no_grad():
            q_right = ((out.q_halt > 0) == stats.exact).float().sum()
            sums = torch.stack([
                a_loss.detach().float(), h_loss.detach().float(), c_loss.detach().float(),
                stats.correct_cells.sum().float(), stats.labelled.sum().float(),
                (stats.exact & halted).sum().float(), halted.sum().float(),
                (steps * halted).sum().float(), q_right, torch.tensor(float(len(steps)), device=self.device),
            ])
        if self.world > 1:
            dist.all_reduce(sums)
        (a, h, q, cells, labelled, exact_h, n_halted, steps_h, q_ok, n) = sums.tolist()
        return {
            "lr": lr, "answer_loss": a / n, "halt_loss": h / n, "continue_loss": q / n,
            "cell_accuracy": cells / max(labelled, 1), "exact_accuracy": exact_h / max(n_halted, 1),
            "halting_accuracy": q_ok / n, "mean_steps": steps_h / max(n_halted, 1), "halted": n_halted / n,
        }

    # --- evaluation and checkpoints ---------------------------------------------------------
    def eval_model(self) -> RecursiveReasoningModel:
        """The weights evaluation and checkpoints use: the EMA when it is on."""
        if self.ema is None:
            return self.model
        averaged = RecursiveReasoningModel(self.config).to(self.device)
        averaged.load_state_dict(self.model.state_dict())
        self.ema.copy_to(averaged)
        return averaged

    def evaluate(self) -> dict[str, float]:
        if self.test_split is None:
            return {}
        split = self.test_split
        if self.settings.eval_examples and self.settings.eval_examples < len(split):
            split = split.subset(slice(0, self.settings.eval_examples))
        with self._autocast():
            pred = predict(self.eval_model(), split, self.settings.eval_batch_size, self.device)
        result = score(pred, split.labels.astype(np.int64))
        if self.info.task == "arc" and "task_index" in split.arrays:
            result.update(arc_pass_at_k(split, pred["answers"], pred["q_halt"]))
        return result

    def save(self, final: bool = False) -> Path:
        """Writes `checkpoints/step_N.safetensors` (weights for export; EMA when on) and beside it
        `step_N.state.safetensors` (everything a resume needs), and `final.safetensors` at the end."""
        folder = self.out / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        self._check_replicas()
        dataset_info = asdict(self.info)
        # ARC version names (index = puzzle identifier) travel at the top of the info, once: the
        # runtime asks each version of a task with them.
        puzzle_names = dataset_info["extra"].pop("puzzle_names", None)
        info = {
            "recipe": self.recipe.to_dict(), "step": self.step, "dataset": str(self.data_path),
            "dataset_info": dataset_info, "command": self.command, "ema": self.ema is not None,
            **({"puzzle_names": puzzle_names} if puzzle_names else {}),
        }
        path = save_checkpoint(self.eval_model(), folder / f"step_{self.step:07d}.safetensors", info)
        self._save_state(folder / f"step_{self.step:07d}.state.safetensors")
        if final:
            path = save_checkpoint(self.eval_model(), self.out / "final.safetensors", info)
        return path

    def _check_replicas(self) -> None:
        """Under DDP every rank must hold the same weights; a checksum per rank goes to the metrics
        log, and a mismatch stops the run rather than saving one rank's drifted copy."""
        if self.world == 1:
            return
        with torch.no_grad():
            total = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).sum()
            mine = torch.tensor([float(total)], dtype=torch.float64)
        sums = [torch.zeros(1, dtype=torch.float64) for _ in range(self.world)]
        dist.all_gather(sums, mine)
        checksums = [float(x) for x in sums]
        if self.log is not None:
            self.log.write({"kind": "replicas", "step": self.step, "checksums": checksums})
        if len(set(checksums)) != 1:
            raise TrmEdgeError(f"replicas diverged at step {self.step}: weight checksums {checksums}")

    def _save_state(self, path: Path) -> None:
        save_train_state(self, path)

    def _load_state(self, path: Path) -> None:
        load_train_state(self, path)

    # --- the loop ---------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to the recipe's step count (or stop early at `stop_at`, as an interruption would;
        the schedule still follows the recipe's steps, so a resume continues the same run)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        s = self.settings
        summary: dict[str, Any] = {"train": {}, "eval": {}}
        if not self.quiet:
            print(f"training {self.recipe.name}: {self.model.num_parameters():,} parameters, "
                  f"{len(self.train_split):,} training puzzles, batch {s.global_batch_size} on {self.world} x "
                  f"{self.device.type}, {self.precision}, {s.steps} steps -> {self.out}")
            if s.precision == "bfloat16" and self.precision == "float32":
                print("  (the recipe asks for bfloat16; this CPU does not run bf16 natively, where autocast is "
                      "several times slower: training in float32)")
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), TextColumn("{task.fields[status]}"), disable=self.quiet)
        window: list[dict[str, float]] = []
        start = time.perf_counter()
        with progress:
            task = progress.add_task("train", total=s.steps, completed=self.step, status="")
            while self.step < min(s.steps, stop_at or s.steps):
                window.append(self.train_step())
                progress.update(task, completed=self.step)
                if self.step % s.log_interval == 0 or self.step == s.steps:
                    mean = {key: float(np.mean([w[key] for w in window])) for key in window[0]}
                    elapsed = time.perf_counter() - start
                    record = {"kind": "train", "step": self.step, "elapsed_s": elapsed, **mean}
                    if self.log is not None:
                        self.log.write(record)
                    summary["train"] = record
                    progress.update(task, status=f"loss {mean['answer_loss']:.3f} cells {mean['cell_accuracy']:.3f} "
                                    f"exact {mean['exact_accuracy']:.3f} steps {mean['mean_steps']:.1f}")
                    window = []
                at_eval = self.step % s.eval_interval == 0 or self.step == s.steps
                at_checkpoint = (self.step % s.checkpoint_interval == 0) if s.checkpoint_interval else at_eval
                if at_eval and self.rank == 0:
                    result = self.evaluate()
                    if result:
                        record = {"kind": "eval", "step": self.step, **result}
                        self.log.write(record)  # type: ignore[union-attr]
                        summary["eval"] = record
                    if result and not self.quiet:
                        progress.console.print(
                            f"step {self.step}: test exact {result['exact_accuracy']:.3f} (max steps), "
                            f"cells {result['cell_accuracy']:.3f}, halting {result['halting_accuracy']:.3f}, "
                            f"own halting {result['halted_exact_accuracy']:.3f} at {result['mean_steps']:.2f} steps")
                if at_checkpoint or self.step == s.steps:
                    self.save(final=self.step == s.steps)
                if at_eval and self.world > 1:
                    dist.barrier()
        if self.rank == 0:
            plot = plot_curves(self.log.read(), self.out / "curves.png")  # type: ignore[union-attr]
            summary["plot"] = str(plot) if plot else None
            summary["checkpoint"] = str(self.out / "final.safetensors")
        return summary


def _setup_distributed(device: str | None) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group when torchrun started us."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")
