"""Training a photo model: native-resolution tiles of the photos-v1 corpus, split by group, content-balanced.

`train_cnn.py --profile photo` and `train_efficientnet.py --profile photo` land here with the config section
`models.cnn_photo` / `models.efficientnet_photo`. Layout as torchvision's references: `get_args_parser`,
`load_data`, `train_one_epoch`, `evaluate`, `main`. What travels in the checkpoint: the tile size (the model's
input size), the tiling rule, the aggregation rule and its temperature, the threshold, and how it was trained.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models import build_model, load_imagenet_weights
from utils.checkpoint import load_checkpoint, save_checkpoint, utc_now
from utils.config import load_config, project_path
from utils.inference import predict_logits
from utils.metrics import binary_metrics
from utils.calibration import choose_threshold
from utils.photo_augment import AugmentSettings
from utils.photo_corpus import FAMILIES, PhotoRecord, content_balancing_weights, read_manifest, split_by_group
from utils.photo_dataset import TiledCrops, TrainingPool, build_training_pool, sample_batch, tile_crops
from utils.preprocessing import CLASS_NAMES, PreprocessSpec, normalize_batch
from utils.tile_aggregation import aggregate_per_image, fit_aggregation, p_fake_from_margin, tile_margins
from utils.training import _lr_factor, build_optimizer, save_trained, training_device, write_history

log = logging.getLogger(__name__)

PHOTO_HYPERPARAMETERS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "label_smoothing",
                         "patience", "seed", "samples_per_epoch", "variants")


def get_args_parser(model_key: str, description: str) -> argparse.ArgumentParser:
    """Flags of a photo training run; unset flags fall back to config models.<model_key>."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", choices=("photo",), required=True, help="train the photo model")
    parser.add_argument("--config", default=None, help="config file (default: config/config.yaml)")
    parser.add_argument("--data-dir", help="the photos-v1 corpus root, with manifest.csv (default: config "
                                           "data.photos_dir)")
    parser.add_argument("--output", help=f"checkpoint to write (default: config models.{model_key}.output)")
    parser.add_argument("--run-dir", help=f"resumable state, log and curves (default: runs/{model_key})")
    parser.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.pt")
    parser.add_argument("--hold-out-family", choices=FAMILIES,
                        help="leave this generator family out of training and validation (the leave-one-family-out "
                             "study); the checkpoint records it")
    parser.add_argument("--input-residual", action=argparse.BooleanOptionalAction, default=None,
                        help="ArtifactCNN only: feed x - up(down(x)) (NPR) instead of x")
    parser.add_argument("--input-size", type=int, help="tile size in pixels (the model's input)")
    for name in ("epochs", "batch_size", "samples_per_epoch", "variants", "patience", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int)
    for name in ("lr", "weight_decay", "warmup_epochs", "label_smoothing"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when present)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--workers", type=int, default=None, help="processes that build the augmented pool")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the augmented-pool cache")
    if model_key.startswith("efficientnet"):
        parser.add_argument("--pretrained", metavar="SOURCE",
                            help="start from ImageNet weights: 'torchvision' (weights API) or a local .pth file")
    return parser


@dataclass
class PhotoData:
    """Everything a photo run trains and validates on."""

    train_records: list[PhotoRecord]
    val_records: list[PhotoRecord]
    pool: TrainingPool
    weights: np.ndarray  # sampling weight of each training crop
    val: TiledCrops  # every validation crop tiled as serving tiles it: calibration and the reported metrics
    val_quick: TiledCrops  # the same crops with fewer tiles each, for the per-epoch early-stopping score


def load_data(args: argparse.Namespace, config: dict, model_cfg: dict, settings: dict) -> PhotoData:
    """The group split, the content-balancing weights, the augmented training pool and the tiled validation."""
    data_cfg = config["data"]
    records = read_manifest(project_path(args.data_dir or data_cfg["photos_dir"]))
    if args.hold_out_family:
        records = [r for r in records if r.family != args.hold_out_family]
    train_idx, val_idx = split_by_group(records, data_cfg["photos_val_fraction"], data_cfg["split_seed"])
    train_records = [records[i] for i in train_idx]
    val_records = [records[i] for i in val_idx]
    input_size = settings["input_size"]
    augment = AugmentSettings.from_config(model_cfg["train"].get("augment"))
    cache_dir = None if args.no_cache else project_path(data_cfg["cache_dir"])
    pool = build_training_pool(train_records, augment, settings["variants"], settings["region"], settings["seed"],
                               cache_dir, args.workers)
    val = tile_crops(val_records, input_size, model_cfg["tiling"]["max_tiles"])
    val_quick = tile_crops(val_records, input_size, settings["early_stopping_tiles"])
    log.info("train %d crops (%d groups), validation %d crops in %d tiles", len(train_records),
             len({r.group for r in train_records}), len(val_records), len(val.tiles))
    return PhotoData(train_records, val_records, pool, content_balancing_weights(train_records), val, val_quick)


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, data: PhotoData,
                    spec: PreprocessSpec, settings: dict, device: torch.device, rng: np.random.Generator,
                    epoch: int) -> dict:
    """`samples_per_epoch` tiles drawn by the content-balancing weights; returns mean loss and accuracy."""
    model.train()
    batch_size = settings["batch_size"]
    n_batches = settings["samples_per_epoch"] // batch_size
    total_loss, total_correct, seen = 0.0, 0, 0
    for _ in tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{settings['epochs']}", leave=False, unit="batch",
                  mininterval=5.0):
        crops = rng.choice(len(data.weights), size=batch_size, p=data.weights)
        tiles = torch.from_numpy(sample_batch(data.pool, crops, spec.input_size, rng))
        inputs = normalize_batch(tiles.to(device), spec).contiguous(memory_format=torch.channels_last)
        labels = torch.from_numpy(data.pool.labels[crops]).to(device)
        logits = model(inputs)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=settings["label_smoothing"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * batch_size
        total_correct += (logits.argmax(1) == labels).sum().item()
        seen += batch_size
    return {"loss": total_loss / max(seen, 1), "accuracy": total_correct / max(seen, 1)}


def validation_margins(model: nn.Module, val: TiledCrops, spec: PreprocessSpec, device: torch.device) -> np.ndarray:
    """Per-tile margins of the validation tiles (float32 forward, as served)."""
    return tile_margins(predict_logits(model, torch.from_numpy(val.tiles), spec, batch_size=256,
                                       device=device).numpy())


def evaluate(model: nn.Module, val: TiledCrops, spec: PreprocessSpec, device: torch.device) -> dict:
    """Per-image validation log-loss (mean-margin aggregation, T = 1), accuracy at 0.5 and ROC-AUC."""
    margins = aggregate_per_image(validation_margins(model, val, spec, device), val.owner, len(val.labels), "mean")
    p_fake = p_fake_from_margin(margins, 1.0)
    metrics = binary_metrics(val.labels, p_fake, 0.5)
    p = np.clip(p_fake, 1e-7, 1 - 1e-7)
    loss = float(-np.mean(val.labels * np.log(p) + (1 - val.labels) * np.log(1 - p)))
    return {"loss": loss, "accuracy": metrics["accuracy"], "roc_auc": metrics["roc_auc"]}


def calibrate(model: nn.Module, val: TiledCrops, spec: PreprocessSpec, device: torch.device) -> dict:
    """The aggregation rule, its temperature and the threshold, all fitted on validation, with the val metrics."""
    margins = validation_margins(model, val, spec, device)
    fitted = fit_aggregation(margins, val.owner, val.labels)
    image_margin = aggregate_per_image(margins, val.owner, len(val.labels), fitted["rule"])
    p_fake = p_fake_from_margin(image_margin, fitted["temperature"], fitted["bias"])
    threshold = choose_threshold(p_fake, val.labels)
    metrics = binary_metrics(val.labels, p_fake, threshold)
    metrics["ece_before_calibration"] = binary_metrics(val.labels, p_fake_from_margin(image_margin, 1.0),
                                                       threshold)["ece"]
    return {**fitted, "threshold": threshold, "val_metrics": metrics}


def _settings(args: argparse.Namespace, model_cfg: dict) -> dict:
    settings = {key: value for key, value in model_cfg["train"].items() if key != "augment"}
    for name in PHOTO_HYPERPARAMETERS:
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    settings["input_size"] = args.input_size or model_cfg["input_size"]
    settings["region"] = settings["input_size"] + model_cfg["train"]["region_margin"]
    return settings


def _arch_args(args: argparse.Namespace, model_cfg: dict) -> dict:
    arch_args = dict(model_cfg["arch_args"])
    if args.input_residual is not None:
        if model_cfg["arch"] != "artifact_cnn":
            raise ValueError("--input-residual applies to the ArtifactCNN only")
        arch_args["input_residual"] = args.input_residual
    return arch_args


def main(model_key: str, argv: list[str] | None = None, description: str = "") -> Path:
    """Train one photo model and write its calibrated checkpoint; returns the checkpoint path."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_args_parser(model_key, description).parse_args(argv)
    config = load_config(args.config)
    model_cfg = config["models"][model_key]
    settings = _settings(args, model_cfg)
    arch_args = _arch_args(args, model_cfg)
    spec = PreprocessSpec(settings["input_size"], tuple(model_cfg["mean"]), tuple(model_cfg["std"]))
    device = training_device(args)
    torch.manual_seed(settings["seed"])
    data = load_data(args, config, model_cfg, settings)

    model = build_model(model_cfg["arch"], **arch_args)
    pretrained = getattr(args, "pretrained", None)
    if pretrained:
        load_imagenet_weights(model, pretrained)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, {**settings, "optimizer": "adamw"})
    steps_per_epoch = settings["samples_per_epoch"] // settings["batch_size"]
    total_steps = steps_per_epoch * settings["epochs"]
    warmup_steps = max(1, int(settings["warmup_epochs"] * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, total_steps, warmup_steps))

    run_dir = project_path(args.run_dir or f"runs/{model_key}")
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best_state.pt"
    history: list[dict] = []
    start_epoch, best_score, best_epoch, stale, elapsed_before = 0, -1.0, -1, 0, 0.0
    if args.resume and last_path.is_file():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = json.loads(state["history"])
        start_epoch, best_score, best_epoch = state["epoch"] + 1, state["best_score"], state["best_epoch"]
        stale, elapsed_before = state["stale"], state["elapsed_s"]
        log.info("resumed from %s after epoch %d", last_path, start_epoch)
    started = time.time()
    for epoch in range(start_epoch, settings["epochs"]):
        if stale >= settings["patience"]:
            break
        epoch_start = time.time()
        # one generator per epoch, seeded by (seed, epoch): a resumed run draws exactly the batches it would have
        rng = np.random.default_rng([settings["seed"], epoch])
        train_stats = train_one_epoch(model, optimizer, scheduler, data, spec, settings, device, rng, epoch)
        val_stats = evaluate(model, data.val_quick, spec, device)
        history.append({"epoch": epoch + 1, "train_loss": round(train_stats["loss"], 5),
                        "train_accuracy": round(train_stats["accuracy"], 5), "val_loss": round(val_stats["loss"], 5),
                        "val_accuracy": round(val_stats["accuracy"], 5), "val_roc_auc": round(val_stats["roc_auc"], 5),
                        "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - epoch_start, 1)})
        print(f"epoch {epoch + 1}/{settings['epochs']}: train loss {train_stats['loss']:.4f} acc "
              f"{train_stats['accuracy']:.4f} | val loss {val_stats['loss']:.4f} acc {val_stats['accuracy']:.4f} "
              f"auc {val_stats['roc_auc']:.4f} | {time.time() - epoch_start:.0f}s", flush=True)
        if val_stats["roc_auc"] > best_score:  # ROC-AUC: the threshold and temperature are fitted afterwards
            best_score, best_epoch, stale = val_stats["roc_auc"], epoch + 1, 0
            torch.save(model.state_dict(), best_path)
        else:
            stale += 1
        write_history(run_dir, history)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch, "history": json.dumps(history),
                    "best_score": best_score, "best_epoch": best_epoch, "stale": stale,
                    "elapsed_s": elapsed_before + time.time() - started}, last_path)
    if not best_path.is_file():
        raise RuntimeError(f"no epoch finished, so there is nothing to save (run dir {run_dir})")
    model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))
    model = model.to(memory_format=torch.contiguous_format)
    train_seconds = elapsed_before + time.time() - started
    calibration = calibrate(model, data.val, spec, device)
    log.info("aggregation %s, temperature %.3f, bias %.3f, threshold %.3f, val accuracy %.4f, ROC-AUC %.4f, "
             "ECE %.4f", calibration["rule"], calibration["temperature"], calibration["bias"], calibration["threshold"],
             calibration["val_metrics"]["accuracy"], calibration["val_metrics"]["roc_auc"],
             calibration["val_metrics"]["ece"])
    metadata = {
        "name": model_key.replace("_photo", ""),
        "profile": "photo",
        "arch": model_cfg["arch"],
        "arch_args": arch_args,
        **spec.to_metadata(),
        "class_names": list(CLASS_NAMES),
        "gradcam_layer": model.gradcam_layer,
        "temperature": calibration["temperature"],
        "threshold": calibration["threshold"],
        "tiling": {"tile_size": spec.input_size, "max_tiles_validation": model_cfg["tiling"]["max_tiles"],
                   "aggregation": calibration["rule"], "bias": calibration["bias"],
                   "aggregation_candidates": calibration["candidates"]},
        "training": {
            "data_dir": str(args.data_dir or config["data"]["photos_dir"]),
            "split": {"by": "group", "stratified_by": ["label", "source"],
                      "val_fraction": config["data"]["photos_val_fraction"],
                      "seed": config["data"]["split_seed"]},
            "held_out_family": args.hold_out_family,
            "train_images": len(data.train_records), "val_images": len(data.val_records),
            "hyperparameters": settings, "augment": AugmentSettings.from_config(
                model_cfg["train"].get("augment")).to_metadata(),
            "sampling": "content-balanced per (content, label), one weight per source image",
            "pretrained": pretrained, "epochs_run": len(history), "best_epoch": best_epoch,
            "train_seconds": round(train_seconds, 1), "total_train_seconds": round(train_seconds, 1),
            "device": str(device), "threads": torch.get_num_threads(), "history": history,
        },
        "metrics": {"val": calibration["val_metrics"], "test": None},
    }
    return save_trained(model, metadata, project_path(args.output or model_cfg["output"]))


def recalibrate(path: Path, model_key: str) -> dict:
    """Refit a photo checkpoint's aggregation rule, temperature, bias and threshold on the validation split of the
    current code, leaving its weights alone; the checkpoint records that it was recalibrated."""
    config = load_config()
    model_cfg = config["models"][model_key]
    model, metadata = load_checkpoint(path)
    spec = PreprocessSpec.from_metadata(metadata)
    records = read_manifest(project_path(metadata["training"]["data_dir"]))
    held_out = metadata["training"].get("held_out_family")
    records = [r for r in records if r.family != held_out] if held_out else records
    split = metadata["training"]["split"]
    _, val_idx = split_by_group(records, split["val_fraction"], split["seed"])
    val = tile_crops([records[i] for i in val_idx], spec.input_size, model_cfg["tiling"]["max_tiles"])
    calibration = calibrate(model, val, spec, torch.device("cpu"))
    metadata.update(temperature=calibration["temperature"], threshold=calibration["threshold"])
    metadata["tiling"].update(aggregation=calibration["rule"], bias=calibration["bias"],
                              aggregation_candidates=calibration["candidates"])
    metadata["metrics"]["val"] = calibration["val_metrics"]
    metadata["recalibrated_at"] = utc_now()
    save_checkpoint(path, model, metadata)
    return calibration


if __name__ == "__main__":  # python -m utils.photo_training recalibrate CHECKPOINT MODEL_KEY
    import sys

    from utils.entry_point import run_entry_point

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if len(sys.argv) != 4 or sys.argv[1] != "recalibrate":
        sys.exit("usage: python -m utils.photo_training recalibrate CHECKPOINT cnn_photo|efficientnet_photo")
    run_entry_point(lambda: print(json.dumps({k: v for k, v in recalibrate(Path(sys.argv[2]), sys.argv[3]).items()
                                               if k != "val_metrics"}, indent=1)))
