"""One scorer for every caller: both model pairs loaded once, a batch of images in, calibrated arrays out.

The service (backend/detector.py), the batch CLI and its Ray engine (backend/cli.py, backend/ray_engine.py) and the
photo evaluation (utils/evaluation/photo_evaluation.py) all score through `Scorer`, so an image gets the same
numbers from each. The shape is Ray Data's callable class: the models load once, in the constructor; each call takes
a batch of uint8 RGB arrays and returns arrays. What a response needs beyond numbers (rounding, hashes, notes,
provenance, timing, the overlay image) is built in backend/.

Routing: an image whose longer side is at most `thumbnail_max_side` goes to the CIFAKE ("thumbnail") pair, resized
to its 32 px input; anything larger to the photo pair, scored on up to `max_tiles` native-resolution tiles. Without
photo checkpoints every image goes to the thumbnail pair.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from models import split_at_gradcam_layer
from utils.errors import ModelUnavailable
from utils.inference.calibration import p_fake_from_logits
from utils.inference.checkpoint import load_checkpoint
from utils.inference.ensemble import ensemble_p_fake, ensemble_threshold, read_pair_threshold
from utils.inference.preprocessing import CLASS_NAMES, FAKE_INDEX, PreprocessSpec, fit_to_input, normalize_batch
from utils.inference.runtime import ForwardPass, build_forward
from utils.inference.tile_aggregation import aggregate_per_image, p_fake_from_margin, tile_margins
from utils.inference.tile_heatmap import raw_tile_cams, stitch_tile_maps
from utils.inference.tiling import TileBox, tile_image

if TYPE_CHECKING:
    from utils.inference.gradcam import GradCamExplainer

log = logging.getLogger(__name__)

PROFILES = ("thumbnail", "photo")
BLANK_STD = 2.0  # grey-level standard deviation under which an image counts as blank (the corpus drops < 1.5);
# measured on what the models saw, so a 2048 px photo costs 16 tiles' worth of arithmetic, not a second pass
TILE_BATCH = 256  # photo tiles per forward pass when a batch holds many photos (evaluation, the batch CLI)
HEATMAP_MAX_CELLS = 64  # the whole-photo map's longer side (the overlay image is finer)


@dataclass
class LoadedModel:
    """One model ready to score: weights, preprocessing and calibration from its checkpoint."""

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


def load_model(path: Path, runtime: str = "onnxruntime", threads: int | None = None, explanations: bool = True,
               max_tiles: int = 16) -> LoadedModel:
    """A checkpoint made ready to score: its forward pass in `runtime` and, unless `explanations` is False, its
    Grad-CAM explainer (photo models: with a gradient graph for `max_tiles` tiles)."""
    threads = threads or os.cpu_count() or 1
    model, metadata = load_checkpoint(path)
    model.requires_grad_(False)  # scoring never trains; Grad-CAM differentiates activations only
    spec = PreprocessSpec.from_metadata(metadata)
    photo = metadata.get("profile") == "photo"
    if photo and not (isinstance(metadata.get("tiling"), dict) and "aggregation" in metadata["tiling"]):
        raise ModelUnavailable(f"model file {path.name} is a photo model without its tiling metadata; retrain it "
                               f"with --profile photo or restore the shipped file")
    split = split_at_gradcam_layer(metadata["arch"], model)
    explainer = None
    if explanations:
        # imported here: pytorch-grad-cam and its dependencies add a second to the start of code that only scores
        from utils.inference.gradcam import GradCamExplainer
        explainer = GradCamExplainer(split, spec.input_size, runtime, threads, tile_batch=max_tiles if photo else None)
    return LoadedModel(name=metadata["name"], model=model, metadata=metadata, spec=spec,
                       forward=build_forward(split, spec.input_size, runtime, threads), explainer=explainer)


def is_blank(pixels: np.ndarray) -> bool:
    """Whether the uint8 RGB pixels the models saw (a thumbnail's input, a photo's tiles) are one flat colour."""
    grey = pixels.reshape(-1, 3).astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float(grey.std()) < BLANK_STD


def label_of(p_fake: float, threshold: float) -> str:
    """FAKE at or above the threshold, REAL below."""
    return CLASS_NAMES[FAKE_INDEX] if p_fake >= threshold else CLASS_NAMES[1 - FAKE_INDEX]


def confidence_of(p_fake: float, threshold: float) -> float:
    """How sure a scorer is of its own answer: p_fake for FAKE, 1 - p_fake for REAL."""
    return p_fake if p_fake >= threshold else 1.0 - p_fake


@dataclass
class Evidence:
    """What Grad-CAM needs for one scored image: each model's layer output, and where a photo's tiles lie."""

    layer_outputs: dict[int, np.ndarray]  # by model column: (1, C, h, w) for a thumbnail, (K, C, h, w) for K tiles
    boxes: list[TileBox] | None  # photo tiles in the scored pixels; None for a thumbnail


@dataclass
class ScoredBatch:
    """Calibrated scores of a batch, one row per image; model columns in `Scorer.model_names` order, NaN where the
    pair that answered has no such model."""

    profiles: list[str]
    p_fake: np.ndarray  # (N, models) each model's calibrated p_fake
    thresholds: np.ndarray  # (N, models) each model's threshold (it depends on the pair that answered)
    ensemble: np.ndarray  # (N,) the pair's ensemble p_fake
    ensemble_thresholds: np.ndarray  # (N,)
    tiles: np.ndarray  # (N,) tiles scored (1 for a thumbnail)
    blank: np.ndarray  # (N,) the pixels the models saw are (nearly) one flat colour
    evidence: list[Evidence] | None  # None unless asked for (keep_evidence=True)

    def __len__(self) -> int:
        return len(self.profiles)

    def scores(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-scorer p_fake columns by name, plus "ensemble" (the evaluation's view)."""
        columns = {name: self.p_fake[:, k] for k, name in enumerate(names)}
        return {**columns, "ensemble": self.ensemble}


@dataclass
class Heatmap:
    """One image's Grad-CAM from the more confident model: a map over the scored pixels (NaN where no tile
    fell), the model and the class it explains, and the tiles it is made of."""

    model: LoadedModel
    target: str
    values: np.ndarray
    boxes: list[TileBox] | None


class Scorer:
    """Both model pairs, loaded once per process; thread-safe for concurrent calls."""

    def __init__(self, models: list[LoadedModel], thumbnail_max_side: int = 64, max_tiles: int = 16,
                 photo_ensemble_threshold: float | None = None) -> None:
        if not models:
            raise ModelUnavailable("no models are loaded")
        self.models = models
        self.pairs = {profile: [m for m in models if m.profile == profile] for profile in PROFILES}
        if not self.pairs["thumbnail"]:
            raise ModelUnavailable("no thumbnail (CIFAKE) models are loaded")
        names = self.model_names
        stray = [m.name for m in self.pairs["photo"] if m.name not in names]
        if stray:
            raise ModelUnavailable(f"photo models {stray} have no thumbnail model of the same name ({names})")
        # each pair's models by result column; a pair may lack a model (its column is then NaN)
        self.columns = {profile: [(names.index(m.name), m) for m in pair] for profile, pair in self.pairs.items()}
        self.thumbnail_max_side = thumbnail_max_side
        self.max_tiles = max_tiles
        self.thresholds = {profile: ensemble_threshold([m.threshold for m in pair])
                           for profile, pair in self.pairs.items() if pair}
        if photo_ensemble_threshold is not None and self.pairs["photo"]:
            self.thresholds["photo"] = float(photo_ensemble_threshold)

    @classmethod
    def from_weights_dir(cls, weights_dir: str | Path, model_files: dict[str, str], runtime: str = "onnxruntime",
                         threads: int | None = None, explanations: bool = True, **options) -> "Scorer":
        """Load every model file named in the config from `weights_dir`.

        `runtime` runs the forward passes and, where the model's layers allow it, Grad-CAM's gradient
        ("onnxruntime" or "torch"); `threads` is its intra-op thread count (default: all cores).
        `explanations=False` skips building the Grad-CAM graphs (scoring starts faster; `explain` is refused).
        A missing photo checkpoint is not fatal (photos then go to the thumbnail pair); a missing thumbnail
        checkpoint is. The photo pair's ensemble threshold comes from saved_models/photo_pair.json when that
        file names the loaded checkpoints.
        """
        max_tiles = int(options.get("max_tiles", 16))
        loaded = []
        for name, file in model_files.items():
            path = Path(weights_dir) / Path(file).name
            if name.endswith("_photo") and not path.is_file():
                log.warning("photo model %s not found in %s; photos will be scored by the thumbnail models",
                            path.name, weights_dir)
                continue
            loaded.append(load_model(path, runtime, threads, explanations, max_tiles))
            m = loaded[-1]
            log.info("loaded %s from %s (%s, T=%.3f, threshold=%.3f, forward %s, Grad-CAM %s)", name, path.name,
                     m.profile, m.temperature, m.threshold, m.forward.name,
                     m.explainer.runtime if m.explainer else "not loaded")
        photo_pair = [m for m in loaded if m.profile == "photo"]
        if photo_pair and options.get("photo_ensemble_threshold") is None:
            options["photo_ensemble_threshold"] = read_pair_threshold(Path(weights_dir), photo_pair)
        return cls(loaded, **options)

    @property
    def model_names(self) -> list[str]:
        """The models' names, in the order of every result's columns (each pair has one model of each name)."""
        return [m.name for m in self.pairs["thumbnail"]]

    @property
    def explains(self) -> bool:
        return all(m.explainer is not None for m in self.models)

    def route(self, width: int, height: int) -> str:
        """The profile that answers an image of this size: "thumbnail" or "photo"."""
        if not self.pairs["photo"] or max(width, height) <= self.thumbnail_max_side:
            return "thumbnail"
        return "photo"

    def __call__(self, images: Sequence[np.ndarray], keep_evidence: bool = False,
                 max_tiles: int | None = None) -> ScoredBatch:
        """Score uint8 HxWx3 RGB arrays: each routed to its pair, each pair's images in batched forward passes.
        `keep_evidence` keeps what `explain` needs; `max_tiles` overrides the tile budget (evaluation)."""
        count, width = len(images), len(self.model_names)
        profiles = [self.route(a.shape[1], a.shape[0]) for a in images]
        batch = ScoredBatch(profiles, np.full((count, width), np.nan), np.full((count, width), np.nan), np.zeros(count),
                            np.zeros(count), np.ones(count, dtype=np.int64), np.zeros(count, dtype=bool),
                            [Evidence({}, None) for _ in range(count)] if keep_evidence else None)
        for profile in PROFILES:
            rows = [i for i, p in enumerate(profiles) if p == profile]
            if not rows:
                continue
            selected = [images[i] for i in rows]
            if profile == "thumbnail":
                self._score_thumbnails(selected, rows, batch)
            else:
                self._score_photos(selected, rows, batch, max_tiles or self.max_tiles)
            columns = [k for k, _ in self.columns[profile]]
            for k, m in self.columns[profile]:
                batch.thresholds[rows, k] = m.threshold
            batch.ensemble[rows] = ensemble_p_fake([batch.p_fake[rows, k] for k in columns])
            batch.ensemble_thresholds[rows] = self.thresholds[profile]
        return batch

    def _score_thumbnails(self, images: list[np.ndarray], rows: list[int], batch: ScoredBatch) -> None:
        """The thumbnail pair on whole images resized to its input: one forward pass per model."""
        inputs: dict[PreprocessSpec, tuple[np.ndarray, np.ndarray]] = {}
        for k, m in self.columns["thumbnail"]:
            if m.spec not in inputs:
                arrays = np.stack([fit_to_input(Image.fromarray(a, "RGB"), m.spec.input_size) for a in images])
                inputs[m.spec] = (arrays, normalize_batch(torch.from_numpy(arrays), m.spec).contiguous().numpy())
            arrays, normalised = inputs[m.spec]
            logits, layer_output = m.forward(normalised)
            batch.p_fake[rows, k] = p_fake_from_logits(torch.from_numpy(logits), m.temperature).numpy()
            if batch.evidence is not None:
                for j, row in enumerate(rows):
                    batch.evidence[row].layer_outputs[k] = layer_output[j:j + 1]
        batch.blank[rows] = [is_blank(a) for a in arrays]

    def _score_photos(self, images: list[np.ndarray], rows: list[int], batch: ScoredBatch, max_tiles: int) -> None:
        """The photo pair on native-resolution tiles; each model's tile margins aggregated per image by its own
        validation-fitted rule, then calibrated by its temperature and bias."""
        tiled: dict[int, tuple[np.ndarray, np.ndarray, list[list[TileBox]]]] = {}
        for k, m in self.columns["photo"]:
            size = m.spec.input_size
            if size not in tiled:
                cut = [tile_image(a, size, max_tiles) for a in images]
                owner = np.concatenate([np.full(len(t), j) for j, (t, _) in enumerate(cut)])
                tiled[size] = (np.concatenate([t for t, _ in cut]), owner, [boxes for _, boxes in cut])
                batch.tiles[rows] = [len(boxes) for _, boxes in cut]
                batch.blank[rows] = [is_blank(t) for t, _ in cut]
            tiles, owner, boxes = tiled[size]
            margins, outputs = [], []
            for start in range(0, len(tiles), TILE_BATCH):
                chunk = normalize_batch(torch.from_numpy(tiles[start:start + TILE_BATCH]), m.spec).contiguous()
                logits, layer_output = m.forward(chunk.numpy())
                margins.append(tile_margins(logits))
                if batch.evidence is not None:
                    outputs.append(layer_output)
            margin = aggregate_per_image(np.concatenate(margins), owner, len(images), m.aggregation)
            batch.p_fake[rows, k] = p_fake_from_margin(margin, m.temperature, m.bias)
            if batch.evidence is not None:
                layer_outputs = np.concatenate(outputs)
                for j, row in enumerate(rows):
                    batch.evidence[row].layer_outputs[k] = layer_outputs[owner == j]
                    batch.evidence[row].boxes = boxes[j]

    def winner(self, batch: ScoredBatch, index: int) -> tuple[int, LoadedModel]:
        """The column and model most confident in its own answer for image `index` (the first on a tie)."""
        return max(self.columns[batch.profiles[index]],
                   key=lambda item: confidence_of(batch.p_fake[index, item[0]], batch.thresholds[index, item[0]]))

    def explain(self, batch: ScoredBatch, index: int, pixels: np.ndarray) -> Heatmap:
        """Grad-CAM of image `index` (scored from `pixels`) by its more confident model, for the class that model
        predicted: one map for a thumbnail; for a photo, the per-tile maps placed at their tiles."""
        if batch.evidence is None:
            raise ValueError("explain needs a batch scored with keep_evidence=True")
        if not self.explains:
            raise ValueError("this scorer was loaded without explanations")
        profile = batch.profiles[index]
        k, model = self.winner(batch, index)
        target = label_of(batch.p_fake[index, k], batch.thresholds[index, k])
        activations = batch.evidence[index].layer_outputs[k]
        if profile == "thumbnail":
            return Heatmap(model, target, model.explainer.heatmap(activations, CLASS_NAMES.index(target)), None)
        boxes = batch.evidence[index].boxes
        gradients = model.explainer.tile_gradients(activations, CLASS_NAMES.index(target))
        height, width = pixels.shape[:2]
        values = stitch_tile_maps(raw_tile_cams(activations, gradients), boxes, width, height, HEATMAP_MAX_CELLS)
        return Heatmap(model, target, values, boxes)
