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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.config import load_config, project_path
from utils.data.photo_augment import AugmentSettings
from utils.data.photo_corpus import FAMILIES, PhotoRecord, content_balancing_weights, read_manifest, split_by_group
from utils.data.photo_dataset import TiledCrops, TrainingPool, build_training_pool, sample_batch, tile_crops
from utils.evaluation.metrics import binary_metrics
from utils.inference.calibration import choose_threshold
from utils.inference.checkpoint import load_checkpoint, save_checkpoint, utc_now
from utils.inference.forward import bf16_is_fast, predict_logits
from utils.inference.preprocessing import CLASS_NAMES, PreprocessSpec, normalize_batch
from utils.inference.tile_aggregation import aggregate_per_image, fit_aggregation, p_fake_from_margin, tile_margins
from utils.training.loop import (Batch, Batches, Run, RunState, build_initial_model, build_optimizer, run_epochs,
                                 save_trained, train_one_epoch, training_device, warmup_cosine)
from utils.training.settings import Section, TrainingSettings, resolve_settings

log = logging.getLogger(__name__)

PHOTO_HYPERPARAMETERS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "label_smoothing",
                         "patience", "seed", "samples_per_epoch", "variants", "precision")


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
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="start from the weights of a photo checkpoint of the same architecture (for example "
                             "the shipped one, to train it longer or on your data), with a fresh optimiser and "
                             "schedule, instead of at random")
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
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                        help=f"training arithmetic (default: config models.{model_key}.train.precision, else auto); "
                             f"auto uses bf16 autocast where the hardware runs it natively")
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


def epoch_batches(data: PhotoData, hyperparameters, input_size: int, rng: np.random.Generator) -> Batches:
    """`samples_per_epoch` tiles in batches, drawn by the content-balancing weights from the augmented pool."""
    batch_size = hyperparameters["batch_size"]
    count = hyperparameters["samples_per_epoch"] // batch_size

    def batches() -> Iterator[Batch]:
        for _ in range(count):
            crops = rng.choice(len(data.weights), size=batch_size, p=data.weights)
            tiles = torch.from_numpy(sample_batch(data.pool, crops, input_size, rng))
            yield tiles, torch.from_numpy(data.pool.labels[crops])
    return Batches(count, batches())


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


def _complete_hyperparameters(values: dict) -> dict:
    return {**values, "region": values["input_size"] + values["region_margin"]}


def resolve_run_settings(args: argparse.Namespace, model_cfg: dict) -> TrainingSettings:
    """Every setting of a photo run: flag, else config models.<model>.train, else default (the tile size defaults
    to the model's configured input size); the augmentation section has no flags."""
    sections = (Section("hyperparameters", flags={name: name for name in PHOTO_HYPERPARAMETERS},
                        defaults={"input_size": model_cfg["input_size"], "optimizer": "adamw", "precision": "auto"},
                        check=_complete_hyperparameters),
                Section("augment", flags={}))
    return resolve_settings(args, model_cfg["train"], sections)


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
    settings = resolve_run_settings(args, model_cfg)
    hyper = settings.hyperparameters
    arch_args = _arch_args(args, model_cfg)
    spec = PreprocessSpec(hyper["input_size"], tuple(model_cfg["mean"]), tuple(model_cfg["std"]))
    device = training_device(args)
    torch.manual_seed(hyper["seed"])
    data = load_data(args, config, model_cfg, hyper)

    model, origin = build_initial_model(args, model_cfg["arch"], arch_args, spec)
    bf16 = hyper["precision"] == "bf16" or (hyper["precision"] == "auto" and bf16_is_fast(device))
    log.info("device %s, bf16 autocast %s", device, bf16)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, hyper)
    steps_per_epoch = hyper["samples_per_epoch"] // hyper["batch_size"]
    run = Run(model, optimizer, warmup_cosine(optimizer, steps_per_epoch, hyper), settings,
              project_path(args.run_dir or f"runs/{model_key}"))
    smoothing = hyper["label_smoothing"]

    def one_epoch(epoch: int) -> dict:
        # one generator per epoch, seeded by (seed, epoch): a resumed run draws exactly the batches it would have
        rng = np.random.default_rng([hyper["seed"], epoch])
        return train_one_epoch(
            model, lambda logits, labels, _: F.cross_entropy(logits.float(), labels, label_smoothing=smoothing),
            optimizer, run.scheduler, epoch_batches(data, hyper, spec.input_size, rng),
            lambda tiles, _: normalize_batch(tiles, spec).contiguous(memory_format=torch.channels_last),
            device, bf16, f"epoch {epoch + 1}/{hyper['epochs']}")

    # early stopping on ROC-AUC: the threshold and temperature are fitted afterwards
    state = run_epochs(run, args.resume, one_epoch, lambda: evaluate(model, data.val_quick, spec, device),
                       score="roc_auc")
    model = model.to(memory_format=torch.contiguous_format)
    calibration = calibrate(model, data.val, spec, device)
    log.info("aggregation %s, temperature %.3f, bias %.3f, threshold %.3f, val accuracy %.4f, ROC-AUC %.4f, "
             "ECE %.4f", calibration["rule"], calibration["temperature"], calibration["bias"], calibration["threshold"],
             calibration["val_metrics"]["accuracy"], calibration["val_metrics"]["roc_auc"],
             calibration["val_metrics"]["ece"])
    metadata = describe_run(model_key, model_cfg, model, spec, calibration, settings, arch_args, args, config, data,
                            state, {**origin, "device": str(device), "bf16": bf16})
    return save_trained(model, metadata, project_path(args.output or model_cfg["output"]))


def describe_run(model_key: str, model_cfg: dict, model: nn.Module, spec: PreprocessSpec, calibration: dict,
                 settings: TrainingSettings, arch_args: dict, args: argparse.Namespace, config: dict,
                 data: PhotoData, state: RunState, where: dict) -> dict:
    """The photo checkpoint's metadata: preprocessing, tiling and calibration for serving, and the run's record."""
    data_cfg = config["data"]
    previous = (where["init_from"] or {}).get("total_train_seconds", 0.0)
    return {
        "name": model_key.replace("_photo", ""), "profile": "photo", "arch": model_cfg["arch"],
        "arch_args": arch_args, **spec.to_metadata(), "class_names": list(CLASS_NAMES),
        "gradcam_layer": model.gradcam_layer, "temperature": calibration["temperature"],
        "threshold": calibration["threshold"],
        "tiling": {"tile_size": spec.input_size, "max_tiles_validation": model_cfg["tiling"]["max_tiles"],
                   "aggregation": calibration["rule"], "bias": calibration["bias"],
                   "aggregation_candidates": calibration["candidates"]},
        "training": {
            "data_dir": str(args.data_dir or data_cfg["photos_dir"]),
            "split": {"by": "group", "stratified_by": ["label", "source"],
                      "val_fraction": data_cfg["photos_val_fraction"], "seed": data_cfg["split_seed"]},
            "held_out_family": args.hold_out_family,
            "train_images": len(data.train_records), "val_images": len(data.val_records),
            "hyperparameters": dict(settings.hyperparameters),
            "augment": AugmentSettings.from_config(settings["augment"]).to_metadata(),
            "sampling": "content-balanced per (content, label), one weight per source image",
            "pretrained": where["pretrained"], "init_from": where["init_from"], "epochs_run": len(state.history),
            "best_epoch": state.best_epoch, "train_seconds": round(state.elapsed_s, 1),
            "total_train_seconds": round(state.elapsed_s + previous, 1), "device": where["device"],
            "bf16": where["bf16"], "threads": torch.get_num_threads(), "history": state.history,
        },
        "metrics": {"val": calibration["val_metrics"], "test": None},
    }


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


if __name__ == "__main__":  # python -m utils.training.photos recalibrate CHECKPOINT MODEL_KEY
    import sys

    from utils.entry_point import run_entry_point

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if len(sys.argv) != 4 or sys.argv[1] != "recalibrate":
        sys.exit("usage: python -m utils.training.photos recalibrate CHECKPOINT cnn_photo|efficientnet_photo")
    run_entry_point(lambda: print(json.dumps({k: v for k, v in recalibrate(Path(sys.argv[2]), sys.argv[3]).items()
                                               if k != "val_metrics"}, indent=1)))
