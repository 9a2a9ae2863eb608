"""Shared training loop for every model: data, schedule, early stopping, resume, calibration, checkpoint.

The entry points (train_cnn.py, train_efficientnet.py) only pick which model's config section to use.
Layout follows torchvision's references: `get_args_parser`, `train_one_epoch`, `evaluate`, `main`.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models import build_model, load_imagenet_weights
from utils.adversarial import fgsm_training_batch, parse_epsilon
from utils.augment import flip_and_translate
from utils.calibration import choose_threshold, fit_temperature, p_fake_from_logits
from utils.checkpoint import git_commit, load_checkpoint, save_checkpoint, utc_now
from utils.config import load_config, project_path
from utils.data import ImageSet, load_image_folder, split_train_val
from utils.distillation import Teacher, distillation_loss, distillation_settings, load_teacher, teacher_logits
from utils.entry_point import run_entry_point
from utils.inference import autocast_context, bf16_is_fast, predict_logits
from utils.metrics import binary_metrics
from utils.preprocessing import CLASS_NAMES, PreprocessSpec, normalize_batch

log = logging.getLogger(__name__)

HYPERPARAMETERS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "warmup_epochs",
                   "label_smoothing", "max_shift", "patience", "seed", "precision")


def get_args_parser(model_key: str, description: str) -> argparse.ArgumentParser:
    """Flags shared by the training scripts; unset flags fall back to config/config.yaml."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=None, help="config file (default: config/config.yaml)")
    parser.add_argument("--data-dir", help="training folder with REAL/ and FAKE/ (default: config data.train_dir)")
    parser.add_argument("--test-dir", help="optional held-out folder scored once at the end for the report "
                                           "(default: config data.test_dir when it exists); never used for choices")
    parser.add_argument("--output", help=f"checkpoint to write (default: config models.{model_key}.output)")
    parser.add_argument("--run-dir", help="where the resumable state, log and curves go (default: runs/<model>)")
    parser.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.pt")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="start from the weights of a saved detector checkpoint of the same architecture "
                             "(for example the shipped one, to fine-tune it on your data) instead of at random")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--warmup-epochs", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--patience", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--val-fraction", type=float)
    parser.add_argument("--limit", type=int, help="use only this many training images (quick experiments)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                        help=f"training arithmetic (default: config models.{model_key}.train.precision, else auto); "
                             f"auto uses bf16 autocast where the hardware runs it natively")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the decoded-image cache")
    parser.add_argument("--adversarial", action="store_true",
                        help=f"FGSM adversarial training: replace a share of each batch by FGSM examples "
                             f"(settings: config models.{model_key}.train.adversarial)")
    parser.add_argument("--adv-fraction", type=float, help="share of each batch attacked (with --adversarial)")
    parser.add_argument("--adv-epsilon", type=parse_epsilon,
                        help="FGSM step in pixel units of [0,1], e.g. 2/255 or 0.0078 (with --adversarial)")
    parser.add_argument("--distill-from", metavar="CHECKPOINT",
                        help=f"knowledge distillation: a saved detector checkpoint (of any architecture, same input "
                             f"size) whose soft predictions guide training (settings: config "
                             f"models.{model_key}.train.distillation)")
    parser.add_argument("--distill-weight", type=float,
                        help="share of the loss given to matching the teacher, in (0, 1] (with --distill-from)")
    parser.add_argument("--distill-temperature", type=float,
                        help="softmax temperature of the distillation term (with --distill-from)")
    if model_key == "efficientnet":
        parser.add_argument("--pretrained", metavar="SOURCE",
                            help="start from ImageNet weights: 'torchvision' (weights API) or a local .pth file")
    return parser


def _settings(args: argparse.Namespace, model_cfg: dict) -> dict:
    settings = {key: value for key, value in model_cfg["train"].items()
                if key not in ("adversarial", "distillation")}
    for name in HYPERPARAMETERS:
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    return settings


def adversarial_settings(args: argparse.Namespace, model_cfg: dict) -> dict | None:
    """The FGSM training settings when --adversarial is given (config, then flags), else None."""
    if not args.adversarial:
        if args.adv_fraction is not None or args.adv_epsilon is not None:
            raise ValueError("--adv-fraction and --adv-epsilon only apply together with --adversarial")
        return None
    configured = model_cfg["train"].get("adversarial") or {}
    fraction = args.adv_fraction if args.adv_fraction is not None else configured.get("fraction")
    epsilon = args.adv_epsilon if args.adv_epsilon is not None else configured.get("epsilon")
    if fraction is None or epsilon is None:
        raise ValueError("--adversarial needs a fraction and an epsilon: set models.<model>.train.adversarial in "
                         "the config or give --adv-fraction and --adv-epsilon")
    fraction, epsilon = float(fraction), parse_epsilon(epsilon)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"adversarial fraction must lie in (0, 1], got {fraction}")
    return {"method": "fgsm", "fraction": fraction, "epsilon": epsilon, "epsilon_255": round(epsilon * 255, 4),
            "pixel_space": "[0,1] before mean/std normalisation, clipped to [0,1]",
            "crafted_with": "the model being trained, in eval mode, on the augmented batch; "
                            "cross-entropy without label smoothing"}


def _lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def training_device(args: argparse.Namespace) -> torch.device:
    """--device, else CUDA when there is one, else the CPU with --threads (default: every core) intra-op threads."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    return device


def build_optimizer(model: nn.Module, settings: dict) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; no weight decay on biases and norm parameters."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": settings["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=settings["lr"], momentum=settings.get("momentum", 0.9), nesterov=True)
    if settings["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=settings["lr"])
    raise ValueError(f"unknown optimizer {settings['optimizer']!r}")


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, data: ImageSet,
                    spec: PreprocessSpec, settings: dict, device: torch.device, bf16: bool,
                    generator: torch.Generator, epoch: int, adversarial: dict | None = None,
                    teacher: Teacher | None = None, distillation: dict | None = None) -> dict:
    """One pass over `data` in a seeded random order; returns mean loss and accuracy.

    With `adversarial` settings, each augmented batch has its first `fraction` replaced by FGSM examples (the
    order is random, so that is a random subset); loss and accuracy are then those of the mixed batch.
    With a `teacher`, the loss mixes in the distillation term on that same batch (`distillation` settings).
    """
    model.train()
    order = torch.randperm(len(data), generator=generator)
    batch_size = settings["batch_size"]
    n_batches = len(order) // batch_size  # drop the ragged last batch: BatchNorm dislikes tiny batches
    total_loss, total_correct, seen = 0.0, 0, 0
    bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{settings['epochs']}", leave=False, unit="batch",
               mininterval=2.0)
    for i in bar:
        index = order[i * batch_size:(i + 1) * batch_size]
        inputs = normalize_batch(data.images[index].to(device, non_blocking=True), spec)
        inputs = flip_and_translate(inputs, settings["max_shift"], generator)
        labels = data.labels[index].to(device, non_blocking=True)
        if adversarial:
            inputs, _ = fgsm_training_batch(model, inputs, labels, spec, adversarial["fraction"],
                                            adversarial["epsilon"], bf16=bf16)
        soft_targets = teacher_logits(teacher, inputs, spec, bf16) if teacher else None
        with autocast_context(device, bf16):
            logits = model(inputs)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=settings["label_smoothing"])
        if soft_targets is not None:
            weight = distillation["weight"]
            loss = (1.0 - weight) * loss + weight * distillation_loss(logits, soft_targets,
                                                                      distillation["temperature"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(index)
        total_correct += (logits.argmax(1) == labels).sum().item()
        seen += len(index)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_correct / seen:.4f}",
                        lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    return {"loss": total_loss / max(seen, 1), "accuracy": total_correct / max(seen, 1)}


def evaluate(model: nn.Module, data: ImageSet, spec: PreprocessSpec, device: torch.device, bf16: bool) -> dict:
    """Validation loss (no smoothing) and accuracy."""
    logits = predict_logits(model, data.images, spec, device=device, bf16=bf16)
    loss = F.cross_entropy(logits, data.labels).item()
    accuracy = (logits.argmax(1) == data.labels).float().mean().item()
    return {"loss": loss, "accuracy": accuracy}


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


def _limit_per_class(labels: torch.Tensor, indices: np.ndarray, limit: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kept = []
    for label in (0, 1):
        members = indices[labels[indices].numpy() == label]
        kept.append(rng.choice(members, size=min(len(members), limit // 2), replace=False))
    return np.sort(np.concatenate(kept))


def initialise_from_checkpoint(model: nn.Module, path: str, model_cfg: dict, spec: PreprocessSpec) -> dict:
    """Load a detector checkpoint's weights into `model`: the same architecture and normalisation, and weights of
    the same shapes.

    Arguments that leave the weights' shapes alone may differ (dropout, EfficientNet's input upsampling), and so
    may the input size, since both networks end in global pooling: fine-tuning is how a model moves to a new
    resolution without training from scratch.

    Returns a summary of where the weights came from, stored in the new checkpoint's training metadata so the
    total training time and lineage stay visible.
    """
    source, metadata = load_checkpoint(path)
    expected = {"arch": model_cfg["arch"], "mean": list(spec.mean), "std": list(spec.std)}
    found = {key: metadata.get(key) for key in expected}
    if json.dumps(found, sort_keys=True) != json.dumps(expected, sort_keys=True):
        raise ValueError(f"--init-from {path}: its model {found} differs from the configured {expected}")
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as error:
        detail = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), "")
        raise ValueError(f"--init-from {path}: its weights do not fit the configured {model_cfg['arch']} "
                         f"{model_cfg['arch_args']} (it has {metadata.get('arch_args')}): {detail}") from None
    training = metadata.get("training") or {}
    previous = training.get("total_train_seconds", training.get("train_seconds", 0.0))
    return {"file": Path(path).name, "git_commit": metadata.get("git_commit"),
            "created_at": metadata.get("created_at"), "epochs_run": training.get("epochs_run"),
            "arch_args": metadata.get("arch_args"), "input_size": metadata.get("input_size"),
            "total_train_seconds": previous}


def calibrate_and_describe(model: nn.Module, val: ImageSet, spec: PreprocessSpec, device: torch.device) -> dict:
    """Fit temperature and threshold on validation logits (float32, as served); return them with val metrics."""
    logits = predict_logits(model, val.images, spec, device=device, bf16=False)
    temperature = fit_temperature(logits, val.labels)
    p_fake = p_fake_from_logits(logits, temperature).numpy()
    threshold = choose_threshold(p_fake, val.labels.numpy())
    uncalibrated_ece = binary_metrics(val.labels.numpy(), p_fake_from_logits(logits).numpy(), threshold)["ece"]
    metrics = binary_metrics(val.labels.numpy(), p_fake, threshold)
    metrics["ece_before_calibration"] = uncalibrated_ece
    return {"temperature": temperature, "threshold": threshold, "val_metrics": metrics}


def main(model_key: str, argv: list[str] | None = None, description: str = "") -> Path:
    """Train one model from its config section and write its calibrated checkpoint; returns the checkpoint path."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_args_parser(model_key, description).parse_args(argv)
    config = load_config(args.config)
    model_cfg = config["models"][model_key]
    data_cfg = config["data"]
    settings = _settings(args, model_cfg)
    adversarial = adversarial_settings(args, model_cfg)
    distillation = distillation_settings(args, model_cfg)
    spec = PreprocessSpec(model_cfg["input_size"], tuple(model_cfg["mean"]), tuple(model_cfg["std"]))

    device = training_device(args)
    precision = settings.setdefault("precision", "auto")
    bf16 = precision == "bf16" or (precision == "auto" and bf16_is_fast(device))
    torch.manual_seed(settings["seed"])
    np.random.seed(settings["seed"])

    data_dir = project_path(args.data_dir or data_cfg["train_dir"])
    cache_dir = None if args.no_cache else project_path(data_cfg["cache_dir"])
    dataset = load_image_folder(data_dir, spec.input_size, cache_dir)
    val_fraction = args.val_fraction if args.val_fraction is not None else data_cfg["val_fraction"]
    train_idx, val_idx = split_train_val(dataset.labels, dataset.digests, val_fraction, data_cfg["split_seed"])
    if args.limit:
        train_idx = _limit_per_class(dataset.labels, train_idx, args.limit, settings["seed"])
        val_idx = _limit_per_class(dataset.labels, val_idx, max(200, args.limit // 5), settings["seed"])
    train_set, val_set = dataset.subset(train_idx), dataset.subset(val_idx)
    log.info("train %d images, validation %d images, device %s, bf16 %s", len(train_set), len(val_set), device, bf16)
    if adversarial:
        log.info("adversarial training: FGSM epsilon %.5f (%g/255) on %.0f%% of each batch", adversarial["epsilon"],
                 adversarial["epsilon_255"], 100 * adversarial["fraction"])

    teacher = load_teacher(distillation["teacher"], spec, device) if distillation else None
    if teacher:
        distillation = {**distillation, "teacher": teacher.source}
        log.info("distilling from %s (%s), weight %.2f, temperature %.2f", teacher.source["file"],
                 teacher.source["arch"], distillation["weight"], distillation["temperature"])

    model = build_model(model_cfg["arch"], **model_cfg["arch_args"])
    pretrained = getattr(args, "pretrained", None)
    if pretrained and args.init_from:
        raise ValueError("--pretrained and --init-from both choose the starting weights; give one of them")
    if pretrained:
        load_imagenet_weights(model, pretrained)
    init_from = initialise_from_checkpoint(model, args.init_from, model_cfg, spec) if args.init_from else None
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, settings)
    steps_per_epoch = len(train_set) // settings["batch_size"]
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training images is fewer than one batch of {settings['batch_size']}")
    total_steps = steps_per_epoch * settings["epochs"]
    warmup_steps = max(1, int(settings["warmup_epochs"] * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, total_steps, warmup_steps))
    generator = torch.Generator().manual_seed(settings["seed"])

    run_dir = project_path(args.run_dir or f"runs/{model_key}")
    run_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    start_epoch, best_accuracy, best_epoch, stale_epochs = 0, -1.0, -1, 0
    last_path, best_path = run_dir / "last.pt", run_dir / "best_state.pt"
    started = time.time()
    elapsed_before = 0.0
    if args.resume and last_path.is_file():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history = json.loads(state["history"])
        start_epoch, best_accuracy = state["epoch"] + 1, state["best_accuracy"]
        best_epoch, stale_epochs, elapsed_before = state["best_epoch"], state["stale_epochs"], state["elapsed_s"]
        log.info("resumed from %s after epoch %d", last_path, start_epoch)
        for name, current in (("adversarial", adversarial), ("distillation", distillation)):
            if name in state and json.loads(state[name]) != current:
                log.warning("the resumed run was trained with %s settings %s, this one uses %s; the checkpoint "
                            "records only the latter", name, json.loads(state[name]), current)
    elif args.resume:
        log.warning("--resume given but %s does not exist; starting fresh", last_path)

    for epoch in range(start_epoch, settings["epochs"]):
        if stale_epochs >= settings["patience"]:
            break
        epoch_start = time.time()
        train_stats = train_one_epoch(model, optimizer, scheduler, train_set, spec, settings, device, bf16,
                                      generator, epoch, adversarial, teacher, distillation)
        val_stats = evaluate(model, val_set, spec, device, bf16)
        history.append({"epoch": epoch + 1, "train_loss": round(train_stats["loss"], 5),
                        "train_accuracy": round(train_stats["accuracy"], 5), "val_loss": round(val_stats["loss"], 5),
                        "val_accuracy": round(val_stats["accuracy"], 5),
                        "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - epoch_start, 1)})
        print(f"epoch {epoch + 1}/{settings['epochs']}: train loss {train_stats['loss']:.4f} "
              f"acc {train_stats['accuracy']:.4f} | val loss {val_stats['loss']:.4f} acc {val_stats['accuracy']:.4f} "
              f"| {time.time() - epoch_start:.0f}s", flush=True)
        if val_stats["accuracy"] > best_accuracy:
            best_accuracy, best_epoch, stale_epochs = val_stats["accuracy"], epoch + 1, 0
            torch.save(model.state_dict(), best_path)
        else:
            stale_epochs += 1
        write_history(run_dir, history)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "epoch": epoch,
                    "history": json.dumps(history), "best_accuracy": best_accuracy, "best_epoch": best_epoch,
                    "stale_epochs": stale_epochs, "elapsed_s": elapsed_before + time.time() - started,
                    "adversarial": json.dumps(adversarial), "distillation": json.dumps(distillation)}, last_path)
        if stale_epochs >= settings["patience"]:
            log.info("early stopping: no validation improvement for %d epochs", stale_epochs)

    if not best_path.is_file():
        raise RuntimeError(f"no epoch finished, so there is nothing to save (run dir {run_dir})")
    model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))
    model = model.to(memory_format=torch.contiguous_format)
    train_seconds = elapsed_before + time.time() - started
    calibration = calibrate_and_describe(model, val_set, spec, device)
    log.info("temperature %.3f, threshold %.3f, val accuracy %.4f, val ECE %.4f (before %.4f)",
             calibration["temperature"], calibration["threshold"], calibration["val_metrics"]["accuracy"],
             calibration["val_metrics"]["ece"], calibration["val_metrics"]["ece_before_calibration"])

    test_metrics = None
    test_dir = args.test_dir or data_cfg.get("test_dir")
    if test_dir and project_path(test_dir).is_dir():
        test_set = load_image_folder(project_path(test_dir), spec.input_size, cache_dir)
        test_logits = predict_logits(model, test_set.images, spec, device=device)
        test_metrics = binary_metrics(test_set.labels.numpy(),
                                      p_fake_from_logits(test_logits, calibration["temperature"]).numpy(),
                                      calibration["threshold"])
        test_metrics["data_dir"] = str(test_dir)
        log.info("test accuracy %.4f, ROC-AUC %.5f, ECE %.4f", test_metrics["accuracy"], test_metrics["roc_auc"],
                 test_metrics["ece"])

    metadata = {
        "name": model_key,
        "arch": model_cfg["arch"],
        "arch_args": model_cfg["arch_args"],
        **spec.to_metadata(),
        "class_names": list(CLASS_NAMES),
        "gradcam_layer": model.gradcam_layer,
        "temperature": calibration["temperature"],
        "threshold": calibration["threshold"],
        "training": {
            "data_dir": str(args.data_dir or data_cfg["train_dir"]),
            "train_images": len(train_set), "val_images": len(val_set), "val_fraction": val_fraction,
            "split_seed": data_cfg["split_seed"], "hyperparameters": settings, "pretrained": pretrained,
            "init_from": init_from, "adversarial": adversarial, "distillation": distillation,
            "epochs_run": len(history), "best_epoch": best_epoch, "train_seconds": round(train_seconds, 1),
            "total_train_seconds": round(train_seconds + (init_from or {}).get("total_train_seconds", 0.0), 1),
            "device": str(device), "bf16": bf16, "history": history,
        },
        "metrics": {"val": calibration["val_metrics"], "test": test_metrics},
    }
    return save_trained(model, metadata, project_path(args.output or model_cfg["output"]))


def save_trained(model: nn.Module, metadata: dict, output: Path) -> Path:
    """Stamp a trained model's metadata with the time and the git commit, write its checkpoint, log the size."""
    save_checkpoint(output, model, {**metadata, "created_at": utc_now(), "git_commit": git_commit()})
    log.info("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)
    return output


def run_cli(model_key: str, description: str) -> None:
    """Entry point for the training scripts: user mistakes (bad folder, bad flag value) exit 2 with one line.

    `--profile photo` trains the model's photo counterpart (config models.<model_key>_photo) on the native-
    resolution corpus instead (utils/photo_training.py).
    """
    import sys

    if "--profile" in sys.argv[1:] or any(arg.startswith("--profile=") for arg in sys.argv[1:]):
        from utils import photo_training
        run_entry_point(lambda: photo_training.main(f"{model_key}_photo", description=description))
        return
    run_entry_point(lambda: main(model_key, description=description))
