"""The native-resolution photo corpus (photos-v1): its manifest, the group split, generator families, weights.

Every crop of one source image shares the manifest's `group`; splits are made over groups, never over files, so
two crops of one picture can never sit on both sides of a split.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.inference.preprocessing import CLASS_NAMES

MANIFEST_NAME = "manifest.csv"

# Leave-one-family-out groups the corpus's generators by how they make an image (issue #19's five families).
GENERATOR_FAMILIES = {
    "StyleGAN2": "GAN", "AttnGAN": "GAN",
    "DALL-E": "DALL-E", "DALL-E 2": "DALL-E", "dalle-mini": "DALL-E",
    "Midjourney": "Midjourney",
    "SD1.5": "Stable Diffusion", "SD1.5-finetune": "Stable Diffusion", "SDXL (beta v2.2.2)": "Stable Diffusion",
    "Stable Diffusion": "Stable Diffusion", "Stable Diffusion (beta)": "Stable Diffusion",
    "Stable Diffusion (unspecified)": "Stable Diffusion", "DreamStudio": "Stable Diffusion",
}
OTHER_FAMILY = "other diffusion"  # GLIDE, GLID-3-XL, latent diffusion, Disco, majesty, pixray-VQGAN, StarryAI
FAMILIES = ("GAN", "DALL-E", "Midjourney", "Stable Diffusion", OTHER_FAMILY)


@dataclass(frozen=True)
class PhotoRecord:
    """One crop of the corpus, as its manifest describes it."""

    path: Path
    label: int  # FAKE = 1
    group: str
    source: str
    generator: str
    content: str
    original_format: str
    original_width: int
    original_height: int
    original_jpeg_quality: float | None

    @property
    def family(self) -> str | None:
        """The generator family of a FAKE crop (None for REAL)."""
        if self.label == 0:
            return None
        return GENERATOR_FAMILIES.get(self.generator, OTHER_FAMILY)


def read_manifest(root: str | Path) -> list[PhotoRecord]:
    """The corpus's crops in manifest order; fails with what to do when the folder is not the corpus."""
    root = Path(root)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: unpack photos-v1.tar.gz (prepare_data.py --source ...)")
    records = []
    with open(manifest, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["label"] not in CLASS_NAMES:
                raise ValueError(f"{manifest}: label {row['label']!r} is neither REAL nor FAKE")
            quality = row.get("original_jpeg_quality") or ""
            records.append(PhotoRecord(
                path=root / row["file"], label=CLASS_NAMES.index(row["label"]), group=row["group"],
                source=row["source_repo"], generator=row["generator"], content=row["content"],
                original_format=row["original_format"], original_width=int(row["original_width"]),
                original_height=int(row["original_height"]),
                original_jpeg_quality=float(quality) if quality else None))
    if not records:
        raise ValueError(f"{manifest} lists no crops")
    return records


def split_by_group(records: list[PhotoRecord], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation indices over whole groups, stratified by (label, source).

    Each stratum gives about `val_fraction` of its groups to validation (at least one when it has two or more),
    so every source, and so every kind of image, is represented on both sides.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    stratum_of: dict[str, tuple[int, str]] = {}
    for index, record in enumerate(records):
        groups.setdefault(record.group, []).append(index)
        stratum_of.setdefault(record.group, (record.label, record.source))
    strata: dict[tuple[int, str], list[str]] = {}
    for group in sorted(groups):
        strata.setdefault(stratum_of[group], []).append(group)
    val_groups: set[str] = set()
    for key in sorted(strata):
        members = strata[key]
        count = int(round(len(members) * val_fraction))
        if len(members) >= 2:
            count = max(1, min(count, len(members) - 1))
        val_groups.update(members[i] for i in rng.permutation(len(members))[:count])
    val = np.array([i for i, r in enumerate(records) if r.group in val_groups], dtype=np.int64)
    train = np.array([i for i, r in enumerate(records) if r.group not in val_groups], dtype=np.int64)
    return train, val


def content_balancing_weights(records: list[PhotoRecord]) -> np.ndarray:
    """Per-crop sampling weights under which both classes have the same content mix (photo, face, art).

    The target mix is the pooled one over both classes; within a class each (content, label) cell is reweighted
    to it, and each class keeps a total weight of one half (also when it lacks a content the other has). Source images cut into several crops weigh as much
    as one-crop images, so a large picture does not count four times.
    """
    crops_per_group = Counter(r.group for r in records)
    image_weight = np.array([1.0 / crops_per_group[r.group] for r in records])
    contents = sorted({r.content for r in records})
    labels = np.array([r.label for r in records])
    content = np.array([contents.index(r.content) for r in records])
    pooled = np.array([image_weight[content == c].sum() for c in range(len(contents))])
    pooled = pooled / pooled.sum()
    weights = np.zeros(len(records))
    for label in (0, 1):
        in_class = labels == label
        class_total = image_weight[in_class].sum()
        for c in range(len(contents)):
            cell = in_class & (content == c)
            cell_total = image_weight[cell].sum()
            if cell_total > 0:
                weights[cell] = image_weight[cell] / cell_total * pooled[c] * 0.5
        if class_total == 0:
            raise ValueError(f"the records hold no {CLASS_NAMES[label]} crop")
        # a content the class lacks leaves its share unmatched: the class still weighs one half
        weights[in_class] *= 0.5 / weights[in_class].sum()
    return weights
