"""The service's detector: scores uploads with the shared scorer and shapes each result into the response."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path

import numpy as np

from utils.errors import ModelUnavailable
from utils.imaging.decoding import MEDIA_TYPES, DecodedImage
from utils.imaging.provenance import read_provenance
from utils.imaging.provenance import warm_up as warm_up_provenance
from utils.inference.overlay import display_image, jpeg_data_uri, overlay_jpeg
from utils.inference.scorer import LoadedModel, ScoredBatch, Scorer, confidence_of, label_of
from utils.inference.tiling import TileBox, is_smaller_than_tile

log = logging.getLogger(__name__)

THUMBNAIL_INPUT_NOTE = ("This {width}x{height} thumbnail was resized to {size}x{size} pixels, the size of the CIFAKE "
                        "images the thumbnail models were trained on.")
SMALLER_THAN_TILE_NOTE = ("This {width}x{height} image is smaller than one {tile}x{tile} tile on a side: it was "
                          "scored on a mirror-padded copy, so part of what the models saw is repeated pixels. Treat "
                          "the verdict with caution.")
NO_PHOTO_MODELS_NOTE = ("The photo models are not installed, so this {width}x{height} image was resized to "
                        "{size}x{size} pixels for the thumbnail models, which were never trained on photos like it. "
                        "Treat the verdict with caution.")
REDUCED_SCALE_NOTE = ("This {width}x{height} JPEG is too large for the server's decoding memory budget, so it was "
                      "decoded at 1/{scale} of its size; the photo models saw that reduced copy, not its native "
                      "pixels.")
AI_DECLARATIONS = ("ai-generated", "ai-edited")  # what the file may declare that decides its verdict
BLANK_NOTE = "This image is blank or almost uniform: there is nothing for the models to judge, whatever they say."


class Detector:
    """The service's view of the scorer: one result dict per decoded upload (the README's response contract).

    Scoring, routing and Grad-CAM are utils.inference.scorer.Scorer's; this adds what a response needs besides
    numbers: labels and the uncertain band, rounding, the upload's sha256, notes on what the models could not see,
    the file's own provenance, the overlay image, and timing. Thread-safe for concurrent requests.
    """

    def __init__(self, scorer: Scorer, uncertain_band: float = 0.1, overlay_size: int = 256,
                 photo_overlay_size: int = 512) -> None:
        self.scorer = scorer
        self.uncertain_band = uncertain_band
        self.overlay_size = overlay_size
        self.photo_overlay_size = photo_overlay_size
        warm_up_provenance()

    @classmethod
    def from_weights_dir(cls, weights_dir: str | Path, model_files: dict[str, str], runtime: str = "onnxruntime",
                         threads: int | None = None, explanations: bool = True, **options) -> "Detector":
        """Load the scorer (Scorer.from_weights_dir: the runtime, threads, explanations and routing options) and
        keep the response options (`uncertain_band`, `overlay_size`, `photo_overlay_size`)."""
        response = {key: options.pop(key) for key in ("uncertain_band", "overlay_size", "photo_overlay_size")
                    if key in options}
        return cls(Scorer.from_weights_dir(weights_dir, model_files, runtime, threads, explanations, **options),
                   **response)

    @property
    def models(self) -> list[LoadedModel]:
        return self.scorer.models

    @property
    def pairs(self) -> dict[str, list[LoadedModel]]:
        return self.scorer.pairs

    @property
    def thresholds(self) -> dict[str, float]:
        """The ensemble threshold of each profile."""
        return self.scorer.thresholds

    @property
    def threshold(self) -> float:
        return self.scorer.thresholds["thumbnail"]

    @property
    def max_tiles(self) -> int:
        return self.scorer.max_tiles

    @property
    def thumbnail_max_side(self) -> int:
        return self.scorer.thumbnail_max_side

    @property
    def model_names(self) -> list[str]:
        """The names a result's `models` list uses, in order."""
        return self.scorer.model_names

    def route(self, decoded: DecodedImage) -> str:
        """The profile that answers this image: "thumbnail" or "photo"."""
        return self.scorer.route(decoded.pixels.shape[1], decoded.pixels.shape[0])

    def describe(self) -> list[dict]:
        """Public facts about each model: architecture, preprocessing, calibration, training data, metrics."""
        described = []
        for m in self.models:
            md = m.metadata
            training = md.get("training", {})
            described.append({
                "name": m.name, "profile": m.profile, "arch": md["arch"], "input_size": md["input_size"],
                "mean": md["mean"], "std": md["std"], "class_names": md["class_names"],
                "gradcam_layer": md["gradcam_layer"], "temperature": md["temperature"], "threshold": md["threshold"],
                "tiling": ({"tile_size": md["input_size"], "max_tiles": self.max_tiles,
                            "aggregation": md["tiling"]["aggregation"]} if m.profile == "photo" else None),
                "parameters": sum(p.numel() for p in m.model.parameters()),
                "trained_at": md.get("created_at"), "git_commit": md.get("git_commit"),
                "training": {k: training.get(k) for k in ("data_dir", "train_images", "val_images", "epochs_run",
                                                          "best_epoch", "train_seconds", "pretrained")},
                "metrics": {split: _headline(md.get("metrics", {}).get(split)) for split in ("val", "test")},
            })
        return described

    def predict(self, images: list[DecodedImage], raw: list[bytes], explain: bool = True) -> list[dict]:
        """One result dict per image, in order (see the README's response contract)."""
        if explain and not self.scorer.explains:
            raise ValueError("this detector was loaded without explanations; call predict with explain=False")
        started = time.perf_counter()
        batch = self.scorer([d.pixels for d in images], keep_evidence=explain)
        inference_ms = (time.perf_counter() - started) * 1000 / len(images)
        return [self._result(batch, i, decoded, data, explain, inference_ms)
                for i, (decoded, data) in enumerate(zip(images, raw))]

    def verdict(self, batch: ScoredBatch, index: int, provenance: dict) -> dict:
        """The ensemble's verdict on image `index`: label, p_fake, confidence, uncertain, threshold, basis."""
        p_ens, threshold = float(batch.ensemble[index]), float(batch.ensemble_thresholds[index])
        verdict = {"label": label_of(p_ens, threshold), "p_fake": round(p_ens, 6),
                   "confidence": round(confidence_of(p_ens, threshold), 6),
                   "uncertain": bool(abs(p_ens - threshold) < self.uncertain_band), "threshold": threshold,
                   "basis": "models"}
        if provenance["declared"] in AI_DECLARATIONS:
            # The file says it was made or edited by a generator: that decides. p_fake and confidence stay the
            # models' own figures, so a reader sees both what the file claims and what the pixels say.
            verdict.update(label="FAKE", uncertain=False, basis="provenance")
        return verdict

    def model_results(self, batch: ScoredBatch, index: int) -> list[dict]:
        """Each model that answered image `index`: name, label, p_fake, confidence in its own answer, threshold."""
        results = []
        for k, m in self.scorer.columns[batch.profiles[index]]:
            p, threshold = float(batch.p_fake[index, k]), float(batch.thresholds[index, k])
            results.append({"name": m.name, "label": label_of(p, threshold), "p_fake": round(p, 6),
                            "confidence": round(confidence_of(p, threshold), 6), "threshold": threshold})
        return results

    @staticmethod
    def provenance(decoded: DecodedImage, data: bytes) -> dict:
        """What the file itself declares (C2PA, generator metadata): utils.imaging.provenance's report."""
        return read_provenance(data, decoded.format, MEDIA_TYPES.get(decoded.format, ""))

    def _result(self, batch: ScoredBatch, index: int, decoded: DecodedImage, data: bytes, explain: bool,
                inference_ms: float) -> dict:
        provenance_start = time.perf_counter()
        provenance = self.provenance(decoded, data)
        provenance_ms = (time.perf_counter() - provenance_start) * 1000
        item_start = time.perf_counter()
        profile = batch.profiles[index]
        return {
            "verdict": self.verdict(batch, index, provenance),
            "profile": profile,
            "tiles": int(batch.tiles[index]),
            "models": self.model_results(batch, index),
            "explanation": self._explanation(batch, index, decoded) if explain else None,
            "input": {"width": decoded.width, "height": decoded.height, "format": decoded.format,
                      "frames": decoded.frames, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
            "domain_note": self._domain_note(decoded, profile, bool(batch.blank[index])),
            "provenance": provenance,
            "timing_ms": {"inference": round(inference_ms, 2), "provenance": round(provenance_ms, 3),
                          "explanation": round((time.perf_counter() - item_start) * 1000, 2)},
        }

    def _explanation(self, batch: ScoredBatch, index: int, decoded: DecodedImage) -> dict:
        """The more confident model's Grad-CAM as the response gives it: the overlay image and the map's values
        (for a photo: the whole image's map, null where no tile fell, and each tile's box in image pixels)."""
        heat = self.scorer.explain(batch, index, decoded.pixels)
        photo = heat.boxes is not None
        rgb = display_image(decoded.pixels if photo else decoded.image,
                            self.photo_overlay_size if photo else self.overlay_size)
        values = ([[None if np.isnan(v) else round(float(v), 3) for v in row] for row in heat.values] if photo
                  else np.round(heat.values, 3).tolist())
        return {"model": heat.model.name, "method": "Grad-CAM", "target": heat.target,
                "layer": heat.model.metadata["gradcam_layer"], "image": jpeg_data_uri(overlay_jpeg(rgb, heat.values)),
                "heatmap": {"width": int(heat.values.shape[1]), "height": int(heat.values.shape[0]),
                            "values": values,
                            "tiles": [_box_in_original(box, decoded) for box in heat.boxes] if photo else None}}

    def _domain_note(self, decoded: DecodedImage, profile: str, blank: bool) -> str | None:
        if blank:
            return BLANK_NOTE
        width, height = decoded.width, decoded.height
        if profile == "photo":
            if decoded.scale > 1:
                return REDUCED_SCALE_NOTE.format(width=width, height=height, scale=decoded.scale)
            tile = self.pairs["photo"][0].spec.input_size
            if is_smaller_than_tile(width, height, tile):
                return SMALLER_THAN_TILE_NOTE.format(width=width, height=height, tile=tile)
            return None
        size = self.pairs["thumbnail"][0].spec.input_size
        if max(width, height) > self.thumbnail_max_side:
            return NO_PHOTO_MODELS_NOTE.format(width=width, height=height, size=size)
        if (width, height) != (size, size):
            return THUMBNAIL_INPUT_NOTE.format(width=width, height=height, size=size)
        return None


def _box_in_original(box: TileBox, decoded: DecodedImage) -> list[int]:
    """A tile's [x, y, width, height] in the upload's own pixels (a JPEG decoded at a reduced scale is larger)."""
    if decoded.scale == 1:
        return box.to_json()
    x, y, width, height = (value * decoded.scale for value in box.to_json())
    return [min(x, decoded.width - 1), min(y, decoded.height - 1), min(width, decoded.width - x),
            min(height, decoded.height - y)]


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
