"""Checkpoint files: weights plus everything needed to rebuild the model and its preprocessing.

A shipped checkpoint is a plain dict loadable with `torch.load(weights_only=True)`:
{"format": CHECKPOINT_FORMAT, "format_version": 1, "metadata": {...}, "state_dict": {...}}.
"""
from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path

import torch
from torch import nn

from models import build_model
from utils.errors import ModelUnavailable

CHECKPOINT_FORMAT = "cifake-detector-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_METADATA = ("name", "arch", "arch_args", "input_size", "mean", "std", "class_names", "gradcam_layer",
                     "temperature", "threshold")


def git_commit() -> str | None:
    """The current git commit of the project, or None outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def utc_now() -> str:
    """ISO-8601 UTC timestamp, second precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def save_checkpoint(path: str | Path, model: nn.Module, metadata: dict) -> None:
    """Write model weights and metadata atomically (write to a temp file, then rename)."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    # str(): torch.__version__ is a TorchVersion object, which weights_only loading refuses to unpickle.
    metadata = {**metadata, "torch_version": str(torch.__version__)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "metadata": metadata,
               "state_dict": state}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_checkpoint(path: str | Path) -> dict:
    """Read and validate a checkpoint file's structure; raise ModelUnavailable with what to do if it is bad."""
    path = Path(path)
    hint = "retrain it with train_cnn.py / train_efficientnet.py, or restore it with `git checkout saved_models/`"
    if not path.is_file():
        raise ModelUnavailable(f"model file {path.name} not found; {hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ModelUnavailable(f"model file {path.name} is corrupt or not a checkpoint; {hint}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelUnavailable(f"model file {path.name} is not a {CHECKPOINT_FORMAT} file; {hint}")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise ModelUnavailable(f"model file {path.name} has format version {payload.get('format_version')}, "
                               f"this code reads version {CHECKPOINT_VERSION}; {hint}")
    metadata = payload.get("metadata")
    missing = [key for key in REQUIRED_METADATA if not isinstance(metadata, dict) or key not in metadata]
    if missing:
        raise ModelUnavailable(f"model file {path.name} lacks metadata {missing}; {hint}")
    return payload


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes, load its weights, and return (model in eval mode, metadata)."""
    payload = read_checkpoint(path)
    metadata = payload["metadata"]
    try:
        model = build_model(metadata["arch"], **metadata["arch_args"])
    except (TypeError, ValueError) as exc:
        raise ModelUnavailable(f"model file {Path(path).name} names an architecture this code cannot build "
                               f"({metadata['arch']!r}: {exc})") from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise ModelUnavailable(
            f"model file {Path(path).name}: weights do not match its metadata ({metadata['arch']} "
            f"{metadata['arch_args']}): {first_line}; retrain it or restore the shipped file") from None
    if metadata["gradcam_layer"] != model.gradcam_layer:
        raise ModelUnavailable(f"model file {Path(path).name} names Grad-CAM layer {metadata['gradcam_layer']!r} "
                               f"but {metadata['arch']} explains {model.gradcam_layer!r}")
    model.eval()
    return model, metadata
