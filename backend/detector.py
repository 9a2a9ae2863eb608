"""The detector: owns the loaded models and turns decoded images into calibrated verdicts and explanations."""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from models import split_at_gradcam_layer
from utils.calibration import p_fake_from_logits
from utils.checkpoint import load_checkpoint
from utils.ensemble import ensemble_p_fake, ensemble_threshold
from utils.errors import ModelUnavailable
from utils.image_io import DecodedImage
from utils.overlay import display_image, jpeg_data_uri, overlay_jpeg
from utils.preprocessing import CLASS_NAMES, FAKE_INDEX, PreprocessSpec, fit_to_input, normalize_batch
from utils.runtime import ForwardPass, build_forward

if TYPE_CHECKING:
    from utils.gradcam import GradCamExplainer

log = logging.getLogger(__name__)

# An upload this many times larger (per side) than the model input is mostly detail the model never sees.
DOMAIN_NOTE_FACTOR = 2


@dataclass
class LoadedModel:
    """One model ready to serve: weights, preprocessing and calibration from its checkpoint."""

    name: str
    model: nn.Module
    metadata: dict
    spec: PreprocessSpec
    forward: ForwardPass
    explainer: GradCamExplainer | None  # None when loaded with explanations=False

    @property
    def temperature(self) -> float:
        return float(self.metadata["temperature"])

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])


def _label(p_fake: float, threshold: float) -> str:
    return CLASS_NAMES[FAKE_INDEX] if p_fake >= threshold else CLASS_NAMES[1 - FAKE_INDEX]


def _confidence(p_fake: float, threshold: float) -> float:
    return p_fake if p_fake >= threshold else 1.0 - p_fake


class Detector:
    """Both models, loaded once per process; thread-safe for concurrent requests."""

    def __init__(self, models: list[LoadedModel], uncertain_band: float = 0.1, overlay_size: int = 256) -> None:
        if not models:
            raise ModelUnavailable("no models are loaded")
        self.models = models
        self.uncertain_band = uncertain_band
        self.overlay_size = overlay_size
        self.threshold = ensemble_threshold([m.threshold for m in models])

    @classmethod
    def from_weights_dir(cls, weights_dir: str | Path, model_files: dict[str, str], runtime: str = "onnxruntime",
                         threads: int | None = None, explanations: bool = True, **options) -> "Detector":
        """Load every model file named in the config from `weights_dir`.

        `runtime` runs the forward passes and, where the model's layers allow it, Grad-CAM's gradient
        ("onnxruntime" or "torch"). `threads` is the intra-op thread count for either runtime (default: all
        cores). `explanations=False` skips building the Grad-CAM graphs (batch scoring starts faster); `predict`
        then refuses `explain=True`.
        """
        threads = threads or os.cpu_count() or 1
        loaded = []
        for name, file in model_files.items():
            model, metadata = load_checkpoint(Path(weights_dir) / Path(file).name)
            model.requires_grad_(False)  # serving never trains; Grad-CAM differentiates activations only
            spec = PreprocessSpec.from_metadata(metadata)
            split = split_at_gradcam_layer(metadata["arch"], model)
            explainer = None
            if explanations:
                # imported here: pytorch-grad-cam and its dependencies add a second to the start of code that
                # only scores (the batch CLI)
                from utils.gradcam import GradCamExplainer
                explainer = GradCamExplainer(split, spec.input_size, runtime, threads)
            loaded.append(LoadedModel(name=metadata["name"], model=model, metadata=metadata, spec=spec,
                                      forward=build_forward(split, spec.input_size, runtime, threads),
                                      explainer=explainer))
            log.info("loaded %s from %s (T=%.3f, threshold=%.3f, forward %s, Grad-CAM %s)", name, file,
                     metadata["temperature"], metadata["threshold"], loaded[-1].forward.name,
                     explainer.runtime if explainer else "not loaded")
        return cls(loaded, **options)

    def describe(self) -> list[dict]:
        """Public facts about each model: architecture, preprocessing, calibration, training data, metrics."""
        described = []
        for m in self.models:
            md = m.metadata
            training = md.get("training", {})
            described.append({
                "name": m.name, "arch": md["arch"], "input_size": md["input_size"], "mean": md["mean"],
                "std": md["std"], "class_names": md["class_names"], "gradcam_layer": md["gradcam_layer"],
                "temperature": md["temperature"], "threshold": md["threshold"],
                "parameters": sum(p.numel() for p in m.model.parameters()),
                "trained_at": md.get("created_at"), "git_commit": md.get("git_commit"),
                "training": {k: training.get(k) for k in ("data_dir", "train_images", "val_images", "epochs_run",
                                                          "best_epoch", "train_seconds", "pretrained")},
                "metrics": {split: _headline(md.get("metrics", {}).get(split)) for split in ("val", "test")},
            })
        return described

    def _p_fake(self, images: list[DecodedImage]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Calibrated p_fake, shape (models, images), and each model's Grad-CAM layer output for the explainer.

        One forward pass per model for the whole batch; images are resized and normalised once per distinct
        preprocessing spec.
        """
        inputs: dict[PreprocessSpec, np.ndarray] = {}
        p_fake, layer_outputs = [], []
        for m in self.models:
            if m.spec not in inputs:
                arrays = np.stack([fit_to_input(d.image, m.spec.input_size) for d in images])
                inputs[m.spec] = normalize_batch(torch.from_numpy(arrays), m.spec).contiguous().numpy()
            logits, layer_output = m.forward(inputs[m.spec])
            p_fake.append(p_fake_from_logits(torch.from_numpy(logits), m.temperature).numpy())
            layer_outputs.append(layer_output)
        return np.stack(p_fake).astype(np.float64), layer_outputs

    def predict(self, images: list[DecodedImage], raw: list[bytes], explain: bool = True) -> list[dict]:
        """One result dict per image, in order (see the README's response contract)."""
        if explain and any(m.explainer is None for m in self.models):
            raise ValueError("this detector was loaded without explanations; call predict with explain=False")
        started = time.perf_counter()
        member_p, layer_outputs = self._p_fake(images)
        inference_ms = (time.perf_counter() - started) * 1000 / len(images)
        results = []
        for i, decoded in enumerate(images):
            item_start = time.perf_counter()
            per_model = []
            for m, p in zip(self.models, member_p[:, i]):
                p = float(p)
                per_model.append({"name": m.name, "label": _label(p, m.threshold), "p_fake": round(p, 6),
                                  "confidence": round(_confidence(p, m.threshold), 6),
                                  "threshold": m.threshold})
            p_ens = float(ensemble_p_fake(member_p[:, i]))
            verdict = {"label": _label(p_ens, self.threshold), "p_fake": round(p_ens, 6),
                       "confidence": round(_confidence(p_ens, self.threshold), 6),
                       "uncertain": bool(abs(p_ens - self.threshold) < self.uncertain_band),
                       "threshold": self.threshold}
            explanation = None
            if explain:
                explanation = self._explain(decoded, layer_outputs, i, per_model)
            results.append({
                "verdict": verdict,
                "models": per_model,
                "explanation": explanation,
                "input": {"width": decoded.width, "height": decoded.height, "format": decoded.format,
                          "frames": decoded.frames, "bytes": len(raw[i]),
                          "sha256": hashlib.sha256(raw[i]).hexdigest()},
                "domain_note": self._domain_note(decoded),
                "timing_ms": {"inference": round(inference_ms, 2),
                              "explanation": round((time.perf_counter() - item_start) * 1000, 2)},
            })
        return results

    def _explain(self, decoded: DecodedImage, layer_outputs: list[np.ndarray], index: int,
                 per_model: list[dict]) -> dict:
        """Grad-CAM from the model with the higher calibrated confidence, for the class it predicted."""
        winner_index = max(range(len(self.models)), key=lambda k: per_model[k]["confidence"])
        winner = self.models[winner_index]
        target = per_model[winner_index]["label"]
        heat = winner.explainer.heatmap(layer_outputs[winner_index][index:index + 1], CLASS_NAMES.index(target))
        rgb = display_image(decoded.image, self.overlay_size)
        return {"model": winner.name, "method": "Grad-CAM", "target": target, "layer": winner.metadata["gradcam_layer"],
                "image": jpeg_data_uri(overlay_jpeg(rgb, heat)),
                "heatmap": {"width": int(heat.shape[1]), "height": int(heat.shape[0]),
                            "values": np.round(heat, 3).tolist()}}

    def _domain_note(self, decoded: DecodedImage) -> str | None:
        size = min(m.spec.input_size for m in self.models)
        if max(decoded.width, decoded.height) <= DOMAIN_NOTE_FACTOR * size and decoded.width == decoded.height:
            return None
        return (f"This {decoded.width}x{decoded.height} image was resized to {size}x{size} pixels, the size of the "
                "CIFAKE images the models were trained on. Detail that matters at full size is lost, and the "
                "models were never trained on photos like it, so treat the verdict with caution.")


def _headline(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    return {k: metrics.get(k) for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "ece")}


class DetectorHolder:
    """Loads the detector in the background so the process answers liveness while weights load."""

    def __init__(self, loader, wait_seconds: float = 30.0) -> None:
        self._loader = loader
        self._ready = threading.Event()
        self._detector: Detector | None = None
        self._error: str | None = None
        self._wait_seconds = wait_seconds

    def start(self, background: bool = True) -> "DetectorHolder":
        """Begin loading (in a daemon thread unless background is False)."""
        if background:
            threading.Thread(target=self._load, name="detector-loader", daemon=True).start()
        else:
            self._load()
        return self

    def _load(self) -> None:
        try:
            self._detector = self._loader()
        except ModelUnavailable as exc:
            self._error = exc.message
            log.error("models unavailable: %s", exc.message)
        except Exception:  # any other failure still leaves a clean 503, with the details in the log only
            self._error = "the models failed to load; see the server log"
            log.exception("loading models failed")
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._detector is not None

    @property
    def error(self) -> str | None:
        return self._error

    def get(self) -> Detector:
        """The loaded detector, waiting briefly if it is still loading; raise ModelUnavailable otherwise."""
        if not self._ready.wait(self._wait_seconds):
            raise ModelUnavailable("the models are still loading; try again shortly")
        if self._detector is None:
            raise ModelUnavailable(self._error or "the models are not loaded")
        return self._detector
