"""A training run on a REAL/FAKE folder (CIFAKE, or a user's own): data, batches, loss, calibration, checkpoint.

The entry points (train_cnn.py, train_efficientnet.py) only pick which model's config section to use. The layout
follows torchvision's references: `get_args_parser`, `load_data`, `evaluate`, `main`; the epoch loop, resume and
early stopping shared with the photo runs are in utils/training/loop.py, the settings in utils/training/settings.py.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.config import load_config, project_path
from utils.data.augment import flip_and_translate
from utils.data.folders import ImageSet, load_image_folder, split_train_val
from utils.entry_point import run_entry_point
from utils.evaluation.adversarial import fgsm_training_batch, parse_epsilon
from utils.evaluation.metrics import binary_metrics
from utils.inference.calibration import choose_threshold, fit_temperature, p_fake_from_logits
from utils.inference.forward import bf16_is_fast, predict_logits
from utils.inference.preprocessing import CLASS_NAMES, PreprocessSpec, normalize_batch
from utils.training.distillation import Teacher, check_distillation, distillation_loss, load_teacher, teacher_logits
from utils.training.loop import (Batch, Batches, BatchTransform, Criterion, Run, RunState, build_initial_model,
                                 build_optimizer, run_epochs, save_trained, train_one_epoch, training_device,
                                 warmup_cosine)
from utils.training.settings import Section, TrainingSettings, resolve_settings

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


def _check_adversarial(values: dict) -> dict:
    fraction, epsilon = values.get("fraction"), values.get("epsilon")
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


# How a folder run's settings resolve (utils/training/settings.py): hyperparameters, then FGSM and distillation,
# each of which exists only when its switch flag is given.
SETTINGS_SECTIONS = (
    Section("hyperparameters", flags={name: name for name in HYPERPARAMETERS}, defaults={"precision": "auto"}),
    Section("adversarial", switch="adversarial", flags={"fraction": "adv_fraction", "epsilon": "adv_epsilon"},
            check=_check_adversarial),
    Section("distillation", switch="distill_from",
            flags={"teacher": "distill_from", "weight": "distill_weight", "temperature": "distill_temperature"},
            defaults={"weight": 0.5, "temperature": 1.0}, check=check_distillation),
)


def resolve_run_settings(args: argparse.Namespace, model_cfg: dict) -> TrainingSettings:
    """Every setting of a folder run: flag, else config models.<model>.train, else default."""
    return resolve_settings(args, model_cfg["train"], SETTINGS_SECTIONS)


def epoch_batches(data: ImageSet, batch_size: int, generator: torch.Generator) -> Batches:
    """`data` in a seeded random order, in full batches (the ragged last one is dropped: BatchNorm dislikes tiny
    batches)."""
    def batches() -> Iterator[Batch]:
        order = torch.randperm(len(data), generator=generator)
        for i in range(len(order) // batch_size):
            index = order[i * batch_size:(i + 1) * batch_size]
            yield data.images[index], data.labels[index]
    return Batches(len(data) // batch_size, batches())


def build_batch_transform(model: nn.Module, spec: PreprocessSpec, settings: TrainingSettings,
                          generator: torch.Generator, bf16: bool) -> BatchTransform:
    """uint8 images -> normalised, randomly flipped and shifted inputs; with FGSM training, the first `fraction`
    of each batch (a random subset: the order is random) replaced by FGSM examples of the model being trained."""
    max_shift, adversarial = settings.hyperparameters["max_shift"], settings["adversarial"]

    def transform(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        inputs = flip_and_translate(normalize_batch(images, spec), max_shift, generator)
        if adversarial:
            inputs, _ = fgsm_training_batch(model, inputs, labels, spec, adversarial["fraction"],
                                            adversarial["epsilon"], bf16=bf16)
        return inputs
    return transform


def build_criterion(settings: TrainingSettings, spec: PreprocessSpec, teacher: Teacher | None,
                    bf16: bool) -> Criterion:
    """Cross-entropy with label smoothing; with a teacher, mixed with the distillation term on the same inputs."""
    smoothing, distillation = settings.hyperparameters["label_smoothing"], settings["distillation"]

    def criterion(logits: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)
        if teacher is None:
            return loss
        weight = distillation["weight"]
        soft_targets = teacher_logits(teacher, inputs, spec, bf16)
        return (1.0 - weight) * loss + weight * distillation_loss(logits, soft_targets, distillation["temperature"])
    return criterion


def evaluate(model: nn.Module, data: ImageSet, spec: PreprocessSpec, device: torch.device, bf16: bool) -> dict:
    """Validation loss (no smoothing) and accuracy."""
    logits = predict_logits(model, data.images, spec, device=device, bf16=bf16)
    loss = F.cross_entropy(logits, data.labels).item()
    accuracy = (logits.argmax(1) == data.labels).float().mean().item()
    return {"loss": loss, "accuracy": accuracy}


def _limit_per_class(labels: torch.Tensor, indices: np.ndarray, limit: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kept = []
    for label in (0, 1):
        members = indices[labels[indices].numpy() == label]
        kept.append(rng.choice(members, size=min(len(members), limit // 2), replace=False))
    return np.sort(np.concatenate(kept))


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


@dataclass
class FolderData:
    """The training and validation images of a folder run."""

    train: ImageSet
    val: ImageSet
    val_fraction: float


def load_data(args: argparse.Namespace, data_cfg: dict, spec: PreprocessSpec, seed: int) -> FolderData:
    """The folder's images (decoded once into the cache), split by content digest into training and validation."""
    cache_dir = None if args.no_cache else project_path(data_cfg["cache_dir"])
    dataset = load_image_folder(project_path(args.data_dir or data_cfg["train_dir"]), spec.input_size, cache_dir)
    val_fraction = args.val_fraction if args.val_fraction is not None else data_cfg["val_fraction"]
    train_idx, val_idx = split_train_val(dataset.labels, dataset.digests, val_fraction, data_cfg["split_seed"])
    if args.limit:
        train_idx = _limit_per_class(dataset.labels, train_idx, args.limit, seed)
        val_idx = _limit_per_class(dataset.labels, val_idx, max(200, args.limit // 5), seed)
    return FolderData(dataset.subset(train_idx), dataset.subset(val_idx), val_fraction)


def score_test_folder(model: nn.Module, test_dir: str | None, spec: PreprocessSpec, calibration: dict,
                      cache_dir: Path | None, device: torch.device) -> dict | None:
    """The calibrated model's metrics on an optional held-out folder, for the report only (never for choices)."""
    if not test_dir or not project_path(test_dir).is_dir():
        return None
    test_set = load_image_folder(project_path(test_dir), spec.input_size, cache_dir)
    test_logits = predict_logits(model, test_set.images, spec, device=device)
    metrics = binary_metrics(test_set.labels.numpy(),
                             p_fake_from_logits(test_logits, calibration["temperature"]).numpy(),
                             calibration["threshold"])
    log.info("test accuracy %.4f, ROC-AUC %.5f, ECE %.4f", metrics["accuracy"], metrics["roc_auc"], metrics["ece"])
    return {**metrics, "data_dir": str(test_dir)}


def main(model_key: str, argv: list[str] | None = None, description: str = "") -> Path:
    """Train one model from its config section and write its calibrated checkpoint; returns the checkpoint path."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = get_args_parser(model_key, description).parse_args(argv)
    config = load_config(args.config)
    model_cfg, data_cfg = config["models"][model_key], config["data"]
    settings = resolve_run_settings(args, model_cfg)
    hyper = settings.hyperparameters
    spec = PreprocessSpec(model_cfg["input_size"], tuple(model_cfg["mean"]), tuple(model_cfg["std"]))
    device = training_device(args)
    bf16 = hyper["precision"] == "bf16" or (hyper["precision"] == "auto" and bf16_is_fast(device))
    torch.manual_seed(hyper["seed"])
    np.random.seed(hyper["seed"])
    data = load_data(args, data_cfg, spec, hyper["seed"])
    log.info("train %d images, validation %d images, device %s, bf16 %s", len(data.train), len(data.val), device,
             bf16)
    if settings["adversarial"]:
        log.info("adversarial training: FGSM epsilon %(epsilon).5f (%(epsilon_255)g/255) on %(fraction).2f of each "
                 "batch", settings["adversarial"])
    teacher = load_teacher(settings["distillation"]["teacher"], spec, device) if settings["distillation"] else None
    if teacher:
        log.info("distilling from %s (%s), weight %.2f, temperature %.2f", teacher.source["file"],
                 teacher.source["arch"], settings["distillation"]["weight"], settings["distillation"]["temperature"])

    model, origin = build_initial_model(args, model_cfg["arch"], model_cfg["arch_args"], spec)
    model = model.to(device).to(memory_format=torch.channels_last)
    steps_per_epoch = len(data.train) // hyper["batch_size"]
    if steps_per_epoch == 0:
        raise ValueError(f"{len(data.train)} training images is fewer than one batch of {hyper['batch_size']}")
    optimizer = build_optimizer(model, hyper)
    generator = torch.Generator().manual_seed(hyper["seed"])
    run = Run(model, optimizer, warmup_cosine(optimizer, steps_per_epoch, hyper), settings,
              project_path(args.run_dir or f"runs/{model_key}"), generator)
    transform = build_batch_transform(model, spec, settings, generator, bf16)
    criterion = build_criterion(settings, spec, teacher, bf16)
    state = run_epochs(
        run, args.resume,
        one_epoch=lambda epoch: train_one_epoch(
            model, criterion, optimizer, run.scheduler, epoch_batches(data.train, hyper["batch_size"], generator),
            transform, device, bf16, f"epoch {epoch + 1}/{hyper['epochs']}"),
        validate=lambda: evaluate(model, data.val, spec, device, bf16), score="accuracy")
    model = model.to(memory_format=torch.contiguous_format)
    calibration = calibrate_and_describe(model, data.val, spec, device)
    log.info("temperature %.3f, threshold %.3f, val accuracy %.4f, val ECE %.4f (before %.4f)",
             calibration["temperature"], calibration["threshold"], calibration["val_metrics"]["accuracy"],
             calibration["val_metrics"]["ece"], calibration["val_metrics"]["ece_before_calibration"])
    cache_dir = None if args.no_cache else project_path(data_cfg["cache_dir"])
    test_metrics = score_test_folder(model, args.test_dir or data_cfg.get("test_dir"), spec, calibration,
                                     cache_dir, device)
    metadata = describe_run(model_key, model_cfg, model, spec, calibration, settings, teacher, origin, state,
                            data, {"data_dir": str(args.data_dir or data_cfg["train_dir"]),
                                   "split_seed": data_cfg["split_seed"], "device": str(device), "bf16": bf16})
    metadata["metrics"] = {"val": calibration["val_metrics"], "test": test_metrics}
    return save_trained(model, metadata, project_path(args.output or model_cfg["output"]))


def describe_run(model_key: str, model_cfg: dict, model: nn.Module, spec: PreprocessSpec, calibration: dict,
                 settings: TrainingSettings, teacher: Teacher | None, origin: dict, state: RunState,
                 data: FolderData, where: dict) -> dict:
    """The checkpoint's metadata: what serving needs to rebuild and calibrate the model, and how it was trained."""
    distillation = settings["distillation"]
    if teacher is not None:
        distillation = {**distillation, "teacher": teacher.source}
    previous = (origin["init_from"] or {}).get("total_train_seconds", 0.0)
    return {
        "name": model_key, "arch": model_cfg["arch"], "arch_args": model_cfg["arch_args"], **spec.to_metadata(),
        "class_names": list(CLASS_NAMES), "gradcam_layer": model.gradcam_layer,
        "temperature": calibration["temperature"], "threshold": calibration["threshold"],
        "training": {
            "data_dir": where["data_dir"], "train_images": len(data.train), "val_images": len(data.val),
            "val_fraction": data.val_fraction, "split_seed": where["split_seed"],
            "hyperparameters": dict(settings.hyperparameters), **origin,
            "adversarial": settings.to_json()["adversarial"], "distillation": distillation,
            "epochs_run": len(state.history), "best_epoch": state.best_epoch,
            "train_seconds": round(state.elapsed_s, 1), "total_train_seconds": round(state.elapsed_s + previous, 1),
            "device": where["device"], "bf16": where["bf16"], "history": state.history,
        },
    }


def run_cli(model_key: str, description: str) -> None:
    """Entry point for the training scripts: user mistakes (bad folder, bad flag value) exit 2 with one line.

    `--profile photo` trains the model's photo counterpart (config models.<model_key>_photo) on the native-
    resolution corpus instead (utils/training/photos.py).
    """
    import sys

    if "--profile" in sys.argv[1:] or any(arg.startswith("--profile=") for arg in sys.argv[1:]):
        from utils.training import photos as photo_training
        run_entry_point(lambda: photo_training.main(f"{model_key}_photo", description=description))
        return
    run_entry_point(lambda: main(model_key, description=description))
