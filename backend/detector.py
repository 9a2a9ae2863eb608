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
from utils.errors import ModelUnavailable
from utils.imaging.decoding import MEDIA_TYPES, DecodedImage
from utils.imaging.provenance import read_provenance
from utils.imaging.provenance import warm_up as warm_up_provenance
from utils.inference.calibration import p_fake_from_logits
from utils.inference.checkpoint import load_checkpoint
from utils.inference.ensemble import ensemble_p_fake, ensemble_threshold, read_pair_threshold
from utils.inference.overlay import display_image, jpeg_data_uri, overlay_jpeg
from utils.inference.preprocessing import CLASS_NAMES, FAKE_INDEX, PreprocessSpec, fit_to_input, normalize_batch
from utils.inference.runtime import ForwardPass, build_forward
from utils.inference.tile_aggregation import aggregate_margins, p_fake_from_margin, tile_margins
from utils.inference.tile_heatmap import raw_tile_cams, stitch_tile_maps
from utils.inference.tiling import TileBox, is_smaller_than_tile, tile_image

if TYPE_CHECKING:
    from utils.inference.gradcam import GradCamExplainer

log = logging.getLogger(__name__)

PROFILES = ("thumbnail", "photo")
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
BLANK_STD = 2.0  # grey-level standard deviation under which an image counts as blank (the corpus drops < 1.5);
# measured on what the models saw, so a 2048 px photo costs 16 tiles' worth of arithmetic, not a second decode pass


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

    @property
    def profile(self) -> str:
        """"photo" for the native-resolution models, "thumbnail" for the CIFAKE ones (older checkpoints)."""
        return self.metadata.get("profile", "thumbnail")

    @property
    def bias(self) -> float:
        """A photo model's calibration bias, added to the aggregated margin before the temperature."""
        return float(self.metadata["tiling"].get("bias", 0.0))

    @property
    def aggregation(self) -> str:
        """How a photo model's tile margins become one (checkpoint metadata, fitted on validation)."""
        return self.metadata["tiling"]["aggregation"]


def _label(p_fake: float, threshold: float) -> str:
    return CLASS_NAMES[FAKE_INDEX] if p_fake >= threshold else CLASS_NAMES[1 - FAKE_INDEX]


def _confidence(p_fake: float, threshold: float) -> float:
    return p_fake if p_fake >= threshold else 1.0 - p_fake


def _check_photo_metadata(metadata: dict, file: str) -> None:
    tiling = metadata.get("tiling")
    if not isinstance(tiling, dict) or "aggregation" not in tiling:
        raise ModelUnavailable(f"model file {file} is a photo model without its tiling metadata; retrain it with "
                               f"--profile photo or restore the shipped file")


@dataclass
class ScoredImage:
    """What the models made of one image, before it is shaped into a response."""

    profile: str
    pair: list[LoadedModel]
    p_fake: np.ndarray  # (models,) calibrated
    layer_outputs: list[np.ndarray]  # per model: (1 or K, C, h, w)
    boxes: list[TileBox] | None = None  # photo tiles, in image pixels
    blank: bool = False  # the pixels the models saw are (nearly) one flat colour


class Detector:
    """Both model pairs, loaded once per process; thread-safe for concurrent requests.

    Routing: an image whose longer side is at most `thumbnail_max_side` goes to the CIFAKE ("thumbnail") pair,
    resized to its 32 px input; anything larger to the photo pair, scored on up to `max_tiles` native-resolution
    tiles. Without photo checkpoints every image goes to the thumbnail pair, with a note saying so.
    """

    def __init__(self, models: list[LoadedModel], uncertain_band: float = 0.1, overlay_size: int = 256,
                 thumbnail_max_side: int = 64, max_tiles: int = 16, photo_overlay_size: int = 512,
                 photo_ensemble_threshold: float | None = None) -> None:
        if not models:
            raise ModelUnavailable("no models are loaded")
        self.models = models
        self.pairs = {profile: [m for m in models if m.profile == profile] for profile in PROFILES}
        if not self.pairs["thumbnail"]:
            raise ModelUnavailable("no thumbnail (CIFAKE) models are loaded")
        self.uncertain_band = uncertain_band
        self.overlay_size = overlay_size
        self.photo_overlay_size = photo_overlay_size
        self.thumbnail_max_side = thumbnail_max_side
        self.max_tiles = max_tiles
        self.thresholds = {profile: ensemble_threshold([m.threshold for m in pair])
                           for profile, pair in self.pairs.items() if pair}
        if photo_ensemble_threshold is not None and self.pairs["photo"]:
            self.thresholds["photo"] = float(photo_ensemble_threshold)
        self.threshold = self.thresholds["thumbnail"]
        warm_up_provenance()

    @classmethod
    def from_weights_dir(cls, weights_dir: str | Path, model_files: dict[str, str], runtime: str = "onnxruntime",
                         threads: int | None = None, explanations: bool = True, **options) -> "Detector":
        """Load every model file named in the config from `weights_dir`.

        `runtime` runs the forward passes and, where the model's layers allow it, Grad-CAM's gradient
        ("onnxruntime" or "torch"). `threads` is the intra-op thread count for either runtime (default: all
        cores). `explanations=False` skips building the Grad-CAM graphs (batch scoring starts faster); `predict`
        then refuses `explain=True`. A missing photo checkpoint is not fatal (photos then go to the thumbnail
        pair, with a note); a missing thumbnail checkpoint is.
        """
        threads = threads or os.cpu_count() or 1
        max_tiles = int(options.get("max_tiles", 16))
        loaded = []
        for name, file in model_files.items():
            path = Path(weights_dir) / Path(file).name
            if name.endswith("_photo") and not path.is_file():
                log.warning("photo model %s not found in %s; photos will be scored by the thumbnail models",
                            path.name, weights_dir)
                continue
            model, metadata = load_checkpoint(path)
            model.requires_grad_(False)  # serving never trains; Grad-CAM differentiates activations only
            spec = PreprocessSpec.from_metadata(metadata)
            photo = metadata.get("profile") == "photo"
            if photo:
                _check_photo_metadata(metadata, path.name)
            split = split_at_gradcam_layer(metadata["arch"], model)
            explainer = None
            if explanations:
                # imported here: pytorch-grad-cam and its dependencies add a second to the start of code that
                # only scores (the batch CLI)
                from utils.inference.gradcam import GradCamExplainer
                explainer = GradCamExplainer(split, spec.input_size, runtime, threads,
                                             tile_batch=max_tiles if photo else None)
            loaded.append(LoadedModel(name=metadata["name"], model=model, metadata=metadata, spec=spec,
                                      forward=build_forward(split, spec.input_size, runtime, threads),
                                      explainer=explainer))
            log.info("loaded %s from %s (%s, T=%.3f, threshold=%.3f, forward %s, Grad-CAM %s)", name, path.name,
                     loaded[-1].profile, metadata["temperature"], metadata["threshold"], loaded[-1].forward.name,
                     explainer.runtime if explainer else "not loaded")
        photo_pair = [m for m in loaded if m.profile == "photo"]
        if photo_pair and options.get("photo_ensemble_threshold") is None:
            options["photo_ensemble_threshold"] = read_pair_threshold(Path(weights_dir), photo_pair)
        return cls(loaded, **options)

    @property
    def model_names(self) -> list[str]:
        """The names a result's `models` list uses, in order (each pair has one model of each name)."""
        return [m.name for m in self.pairs["thumbnail"]]

    def route(self, decoded: DecodedImage) -> str:
        """The profile that answers this image: "thumbnail" or "photo"."""
        if not self.pairs["photo"] or max(decoded.width, decoded.height) <= self.thumbnail_max_side:
            return "thumbnail"
        return "photo"

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

    def _score_thumbnails(self, images: list[DecodedImage]) -> list[ScoredImage]:
        """The thumbnail pair on whole images resized to its input: one forward pass per model for the batch."""
        pair = self.pairs["thumbnail"]
        inputs: dict[PreprocessSpec, np.ndarray] = {}
        p_fake, layer_outputs = [], []
        for m in pair:
            if m.spec not in inputs:
                arrays = np.stack([fit_to_input(d.image, m.spec.input_size) for d in images])
                inputs[m.spec] = normalize_batch(torch.from_numpy(arrays), m.spec).contiguous().numpy()
            logits, layer_output = m.forward(inputs[m.spec])
            p_fake.append(p_fake_from_logits(torch.from_numpy(logits), m.temperature).numpy())
            layer_outputs.append(layer_output)
        member_p = np.stack(p_fake).astype(np.float64)
        return [ScoredImage("thumbnail", pair, member_p[:, i], [out[i:i + 1] for out in layer_outputs],
                            blank=is_blank(arrays[i])) for i in range(len(images))]

    def _score_photo(self, decoded: DecodedImage) -> ScoredImage:
        """The photo pair on native-resolution tiles of one image; each model's tile margins aggregated by its
        own validation-fitted rule, then calibrated by its temperature."""
        pair = self.pairs["photo"]
        array = decoded.pixels
        tiles: dict[PreprocessSpec, np.ndarray] = {}
        boxes: list[TileBox] = []
        blank = False
        p_fake, layer_outputs = [], []
        for m in pair:
            if m.spec not in tiles:
                pixels, boxes = tile_image(array, m.spec.input_size, self.max_tiles)
                blank = is_blank(pixels)
                tiles[m.spec] = normalize_batch(torch.from_numpy(pixels), m.spec).contiguous().numpy()
            logits, layer_output = m.forward(tiles[m.spec])
            margin = aggregate_margins(tile_margins(logits), m.aggregation)
            p_fake.append(float(p_fake_from_margin(margin, m.temperature, m.bias)))
            layer_outputs.append(layer_output)
        return ScoredImage("photo", pair, np.array(p_fake, dtype=np.float64), layer_outputs, boxes, blank)

    def predict(self, images: list[DecodedImage], raw: list[bytes], explain: bool = True) -> list[dict]:
        """One result dict per image, in order (see the README's response contract)."""
        if explain and any(m.explainer is None for m in self.models):
            raise ValueError("this detector was loaded without explanations; call predict with explain=False")
        started = time.perf_counter()
        routes = [self.route(d) for d in images]
        thumbnails = [i for i, r in enumerate(routes) if r == "thumbnail"]
        scored: list[ScoredImage | None] = [None] * len(images)
        if thumbnails:
            for i, item in zip(thumbnails, self._score_thumbnails([images[i] for i in thumbnails])):
                scored[i] = item
        for i, route in enumerate(routes):
            if route == "photo":
                scored[i] = self._score_photo(images[i])
        inference_ms = (time.perf_counter() - started) * 1000 / len(images)
        return [self._result(decoded, data, item, explain, inference_ms)
                for decoded, data, item in zip(images, raw, scored)]

    def _result(self, decoded: DecodedImage, data: bytes, scored: ScoredImage, explain: bool,
                inference_ms: float) -> dict:
        provenance_start = time.perf_counter()
        provenance = read_provenance(data, decoded.format, MEDIA_TYPES.get(decoded.format, ""))
        provenance_ms = (time.perf_counter() - provenance_start) * 1000
        item_start = time.perf_counter()
        threshold = self.thresholds[scored.profile]
        per_model = []
        for m, p in zip(scored.pair, scored.p_fake):
            p = float(p)
            per_model.append({"name": m.name, "label": _label(p, m.threshold), "p_fake": round(p, 6),
                              "confidence": round(_confidence(p, m.threshold), 6), "threshold": m.threshold})
        p_ens = float(ensemble_p_fake(scored.p_fake))
        verdict = {"label": _label(p_ens, threshold), "p_fake": round(p_ens, 6),
                   "confidence": round(_confidence(p_ens, threshold), 6),
                   "uncertain": bool(abs(p_ens - threshold) < self.uncertain_band), "threshold": threshold,
                   "basis": "models"}
        if provenance["declared"] in AI_DECLARATIONS:
            # The file says it was made or edited by a generator: that decides. p_fake and confidence stay the
            # models' own figures, so a reader sees both what the file claims and what the pixels say.
            verdict.update(label="FAKE", uncertain=False, basis="provenance")
        explanation = None
        if explain:
            explanation = (self._explain_photo(decoded, scored, per_model) if scored.profile == "photo"
                           else self._explain_thumbnail(decoded, scored, per_model))
        return {
            "verdict": verdict,
            "profile": scored.profile,
            "tiles": len(scored.boxes) if scored.boxes is not None else 1,
            "models": per_model,
            "explanation": explanation,
            "input": {"width": decoded.width, "height": decoded.height, "format": decoded.format,
                      "frames": decoded.frames, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
            "domain_note": self._domain_note(decoded, scored),
            "provenance": provenance,
            "timing_ms": {"inference": round(inference_ms, 2), "provenance": round(provenance_ms, 3),
                          "explanation": round((time.perf_counter() - item_start) * 1000, 2)},
        }

    @staticmethod
    def _winner(scored: ScoredImage, per_model: list[dict]) -> int:
        return max(range(len(scored.pair)), key=lambda k: per_model[k]["confidence"])

    def _explain_thumbnail(self, decoded: DecodedImage, scored: ScoredImage, per_model: list[dict]) -> dict:
        """Grad-CAM from the model with the higher calibrated confidence, for the class it predicted."""
        k = self._winner(scored, per_model)
        winner, target = scored.pair[k], per_model[k]["label"]
        heat = winner.explainer.heatmap(scored.layer_outputs[k], CLASS_NAMES.index(target))
        rgb = display_image(decoded.image, self.overlay_size)
        return {"model": winner.name, "method": "Grad-CAM", "target": target,
                "layer": winner.metadata["gradcam_layer"], "image": jpeg_data_uri(overlay_jpeg(rgb, heat)),
                "heatmap": {"width": int(heat.shape[1]), "height": int(heat.shape[0]),
                            "values": np.round(heat, 3).tolist(), "tiles": None}}

    def _explain_photo(self, decoded: DecodedImage, scored: ScoredImage, per_model: list[dict]) -> dict:
        """The more confident photo model's per-tile Grad-CAM maps, placed at their tiles over the whole image."""
        k = self._winner(scored, per_model)
        winner, target = scored.pair[k], per_model[k]["label"]
        activations = scored.layer_outputs[k]
        gradients = winner.explainer.tile_gradients(activations, CLASS_NAMES.index(target))
        height, width = decoded.pixels.shape[:2]
        heat = stitch_tile_maps(raw_tile_cams(activations, gradients), scored.boxes, width, height,
                                HEATMAP_MAX_CELLS)
        rgb = display_image(decoded.pixels, self.photo_overlay_size)
        values = [[None if np.isnan(v) else round(float(v), 3) for v in row] for row in heat]
        return {"model": winner.name, "method": "Grad-CAM", "target": target,
                "layer": winner.metadata["gradcam_layer"], "image": jpeg_data_uri(overlay_jpeg(rgb, heat)),
                "heatmap": {"width": int(heat.shape[1]), "height": int(heat.shape[0]), "values": values,
                            "tiles": [_box_in_original(box, decoded) for box in scored.boxes]}}

    def _domain_note(self, decoded: DecodedImage, scored: ScoredImage) -> str | None:
        if scored.blank:
            return BLANK_NOTE
        profile = scored.profile
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


HEATMAP_MAX_CELLS = 64  # the whole-photo map's longer side in the JSON (the overlay image is finer)


def is_blank(pixels: np.ndarray) -> bool:
    """Whether the uint8 RGB pixels the models saw (a thumbnail's input, a photo's tiles) are one flat colour."""
    grey = pixels.reshape(-1, 3).astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float(grey.std()) < BLANK_STD


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
