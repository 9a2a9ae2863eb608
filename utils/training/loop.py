"""The parts every training run shares: device, optimiser and schedule, one epoch, the resumable epoch loop with
early stopping, the history files and the final checkpoint.

The shape follows torchvision's references: `train_one_epoch(model, criterion, optimizer, ...)` takes batches that
a data function yields, a batch transform and a criterion, all built by the run's `main`.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from models import build_model, load_imagenet_weights
from utils.inference.checkpoint import git_commit, load_checkpoint, save_checkpoint, utc_now
from utils.inference.forward import autocast_context
from utils.inference.preprocessing import PreprocessSpec
from utils.training.settings import TrainingSettings, check_resumable

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels)
BatchTransform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (inputs, labels) -> model inputs
Criterion = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels, inputs) -> loss


@dataclass
class Batches:
    """One epoch's batches, and how many there are (for the progress bar)."""

    count: int
    batches: Iterator[Batch]

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Batch]:
        return self.batches


def training_device(args: argparse.Namespace) -> torch.device:
    """--device, else CUDA when there is one, else the CPU with --threads (default: every core) intra-op threads."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    return device


def build_optimizer(model: nn.Module, hyperparameters) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; no weight decay on biases and norm parameters."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": hyperparameters["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    if hyperparameters["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=hyperparameters["lr"], momentum=hyperparameters.get("momentum", 0.9),
                               nesterov=True)
    if hyperparameters["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=hyperparameters["lr"])
    raise ValueError(f"unknown optimizer {hyperparameters['optimizer']!r}")


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(optimizer: torch.optim.Optimizer, steps_per_epoch: int, hyperparameters):
    """The learning-rate schedule of every run, stepped once per batch."""
    total_steps = steps_per_epoch * hyperparameters["epochs"]
    warmup_steps = max(1, int(hyperparameters["warmup_epochs"] * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup_steps))


def train_one_epoch(model: nn.Module, criterion: Criterion, optimizer: torch.optim.Optimizer, scheduler,
                    batches: Iterable[Batch], batch_transform: BatchTransform, device: torch.device, bf16: bool,
                    description: str) -> dict:
    """One pass over `batches`; returns the mean loss and accuracy over the samples seen."""
    model.train()
    total_loss, total_correct, seen = 0.0, 0, 0
    bar = tqdm(batches, desc=description, leave=False, unit="batch", mininterval=2.0)
    for inputs, labels in bar:
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        inputs = batch_transform(inputs, labels)
        with autocast_context(device, bf16):
            logits = model(inputs)
        loss = criterion(logits, labels, inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(labels)
        total_correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_correct / seen:.4f}",
                        lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    return {"loss": total_loss / max(seen, 1), "accuracy": total_correct / max(seen, 1)}


@dataclass
class RunState:
    """Where a run stands after its last finished epoch; all of it is in the resumable state."""

    history: list[dict] = field(default_factory=list)
    next_epoch: int = 0
    best_score: float = -1.0
    best_epoch: int = -1
    stale_epochs: int = 0
    elapsed_s: float = 0.0


@dataclass
class Run:
    """A resumable run: the objects whose state is saved after every epoch, and where it is saved."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    settings: TrainingSettings
    run_dir: Path
    generator: torch.Generator | None = None  # a run whose batches draw from one generator restores its state

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best_state.pt"

    def save(self, state: RunState) -> None:
        saved = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "run_state": json.dumps(state.__dict__),
                 "settings": json.dumps(self.settings.to_json()), "epoch": state.next_epoch - 1}
        if self.generator is not None:
            saved["generator"] = self.generator.get_state()
        torch.save(saved, self.last_path)

    def restore(self) -> RunState:
        """The saved state of this run folder (refused if it was started with other settings)."""
        saved = torch.load(self.last_path, map_location="cpu", weights_only=True)
        if "run_state" not in saved:
            raise ValueError(f"--resume: {self.last_path} was written by an older version of the training code; "
                             f"start a new run (another --run-dir, or without --resume)")
        check_resumable(self.settings, json.loads(saved["settings"]), self.run_dir)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.generator is not None:
            self.generator.set_state(saved["generator"])
        return RunState(**json.loads(saved["run_state"]))


def run_epochs(run: Run, resume: bool, one_epoch: Callable[[int], dict], validate: Callable[[], dict],
               score: str) -> RunState:
    """Train epoch after epoch with early stopping on the validation `score` (higher is better), saving the
    resumable state and the history after each; returns the final state, with the best weights loaded."""
    hyperparameters = run.settings.hyperparameters
    run.run_dir.mkdir(parents=True, exist_ok=True)
    state = RunState()
    if resume and run.last_path.is_file():
        state = run.restore()  # refused before anything in the folder changes if the settings differ
        log.info("resumed from %s after epoch %d", run.last_path, state.next_epoch)
    elif resume:
        log.warning("--resume given but %s does not exist; starting fresh", run.last_path)
    run.settings.write(run.run_dir)
    started, elapsed_before = time.time(), state.elapsed_s
    for epoch in range(state.next_epoch, hyperparameters["epochs"]):
        if state.stale_epochs >= hyperparameters["patience"]:
            break
        epoch_start = time.time()
        train_stats, val_stats = one_epoch(epoch), validate()
        state.history.append(_history_row(epoch, train_stats, val_stats, run.optimizer, time.time() - epoch_start))
        print(f"epoch {epoch + 1}/{hyperparameters['epochs']}: train loss {train_stats['loss']:.4f} acc "
              f"{train_stats['accuracy']:.4f} | val " + " ".join(f"{k} {v:.4f}" for k, v in val_stats.items())
              + f" | {time.time() - epoch_start:.0f}s", flush=True)
        if val_stats[score] > state.best_score:
            state.best_score, state.best_epoch, state.stale_epochs = val_stats[score], epoch + 1, 0
            torch.save(run.model.state_dict(), run.best_path)
        else:
            state.stale_epochs += 1
        state.next_epoch, state.elapsed_s = epoch + 1, elapsed_before + time.time() - started
        write_history(run.run_dir, state.history)
        run.save(state)
        if state.stale_epochs >= hyperparameters["patience"]:
            log.info("early stopping: no validation improvement for %d epochs", state.stale_epochs)
    if not run.best_path.is_file():
        raise RuntimeError(f"no epoch finished, so there is nothing to save (run dir {run.run_dir})")
    run.model.load_state_dict(torch.load(run.best_path, map_location="cpu", weights_only=True))
    state.elapsed_s = elapsed_before + time.time() - started
    return state


def _history_row(epoch: int, train_stats: dict, val_stats: dict, optimizer, seconds: float) -> dict:
    row = {"epoch": epoch + 1, **{f"train_{k}": round(v, 5) for k, v in train_stats.items()},
           **{f"val_{k}": round(v, 5) for k, v in val_stats.items()}}
    return {**row, "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 1)}


def write_history(run_dir: Path, history: list[dict]) -> None:
    """Per-epoch CSV log and a training-curve PNG."""
    with open(run_dir / "history.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        ax_loss.plot(epochs, [row[f"{split}_loss"] for row in history], marker="o", label=split)
        ax_acc.plot(epochs, [row[f"{split}_accuracy"] for row in history], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (train includes label smoothing)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "curves.png", dpi=100)
    plt.close(fig)


def save_trained(model: nn.Module, metadata: dict, output: Path) -> Path:
    """Stamp a trained model's metadata with the time and the git commit, write its checkpoint, log the size."""
    save_checkpoint(output, model, {**metadata, "created_at": utc_now(), "git_commit": git_commit()})
    log.info("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)
    return output


def initialise_from_checkpoint(model: nn.Module, path: str, arch: str, arch_args: dict, spec: PreprocessSpec) -> dict:
    """Load a detector checkpoint's weights into `model`: the same architecture and normalisation, and weights of
    the same shapes.

    Arguments that leave the weights' shapes alone may differ (dropout, EfficientNet's input upsampling), and so
    may the input size, since both networks end in global pooling: fine-tuning is how a model moves to a new
    resolution without training from scratch.

    Returns a summary of where the weights came from, stored in the new checkpoint's training metadata so the
    total training time and lineage stay visible.
    """
    source, metadata = load_checkpoint(path)
    expected = {"arch": arch, "mean": list(spec.mean), "std": list(spec.std)}
    found = {key: metadata.get(key) for key in expected}
    if json.dumps(found, sort_keys=True) != json.dumps(expected, sort_keys=True):
        raise ValueError(f"--init-from {path}: its model {found} differs from the configured {expected}")
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as error:
        detail = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), "")
        raise ValueError(f"--init-from {path}: its weights do not fit the configured {arch} "
                         f"{arch_args} (it has {metadata.get('arch_args')}): {detail}") from None
    training = metadata.get("training") or {}
    previous = training.get("total_train_seconds", training.get("train_seconds", 0.0))
    return {"file": Path(path).name, "git_commit": metadata.get("git_commit"),
            "created_at": metadata.get("created_at"), "epochs_run": training.get("epochs_run"),
            "arch_args": metadata.get("arch_args"), "input_size": metadata.get("input_size"),
            "total_train_seconds": previous}


def build_initial_model(args: argparse.Namespace, arch: str, arch_args: dict,
                        spec: PreprocessSpec) -> tuple[nn.Module, dict]:
    """The architecture `arch` built with `arch_args`, at random, from ImageNet weights (--pretrained) or from a detector checkpoint
    (--init-from); returns it with a record of where its starting weights came from."""
    model = build_model(arch, **arch_args)
    pretrained = getattr(args, "pretrained", None)
    if pretrained and args.init_from:
        raise ValueError("--pretrained and --init-from both choose the starting weights; give one of them")
    if pretrained:
        load_imagenet_weights(model, pretrained)
    init_from = initialise_from_checkpoint(model, args.init_from, arch, arch_args, spec) if args.init_from else None
    return model, {"pretrained": pretrained, "init_from": init_from}
