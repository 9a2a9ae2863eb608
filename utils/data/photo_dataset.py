"""Photo crops in memory for training: decoded once, augmented into a seeded pool, and tiled for validation.

Training draws tiles from a pool of `variants` augmented copies of every training crop (utils/data/photo_augment.py),
made once per run and cached, so the two CPU-bound jobs (JPEG/resize augmentation and the network) do not compete
for the same cores every epoch. Validation crops are never augmented: they are tiled as serving tiles a photo
(utils/inference/tiling.py), through the same decode.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from utils.data.photo_augment import AugmentSettings, augment_photo, random_region
from utils.data.photo_corpus import PhotoRecord
from utils.imaging.decoding import decode_image
from utils.inference.tiling import tile_image

log = logging.getLogger(__name__)

POOL_VERSION = 1  # bump when the augmentation chain changes, so stale cached pools are not reused


def decode_crop(path: str | Path) -> np.ndarray:
    """A corpus crop as uint8 HxWx3, decoded by the service's own decoder (full resolution, EXIF applied)."""
    return decode_image(Path(path).read_bytes()).pixels


def _augmented_variants(job: tuple[str, int, int, int, int, dict]) -> np.ndarray:
    path, index, variants, region, seed, settings = job
    settings = AugmentSettings.from_config(settings)
    crop = Image.fromarray(decode_crop(path))
    out = np.empty((variants, region, region, 3), dtype=np.uint8)
    for variant in range(variants):
        rng = np.random.default_rng([seed, index, variant])
        out[variant] = random_region(np.asarray(augment_photo(crop, settings, region, rng)), region, rng)
    return out


@dataclass
class TrainingPool:
    """`images[i, v]` is variant v of training crop i: a `region` px square cut after augmentation."""

    images: np.ndarray  # (crops, variants, region, region, 3) uint8
    labels: np.ndarray  # (crops,) int64, FAKE = 1


def build_training_pool(records: list[PhotoRecord], settings: AugmentSettings, variants: int, region: int,
                        seed: int, cache_dir: Path | None = None, workers: int | None = None) -> TrainingPool:
    """Augmented regions of every record (seeded per crop and variant, so the pool is reproducible)."""
    labels = np.array([r.label for r in records], dtype=np.int64)
    key = hashlib.sha1(json.dumps({"v": POOL_VERSION, "files": [str(r.path) for r in records], "seed": seed,
                                   "variants": variants, "region": region, "settings": settings.to_metadata()},
                                  sort_keys=True).encode()).hexdigest()[:16]
    cache_file = Path(cache_dir) / f"photo-pool-{region}px-{key}.npy" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        log.info("loaded the augmented pool from %s", cache_file)
        return TrainingPool(np.load(cache_file, mmap_mode=None), labels)
    jobs = [(str(r.path), i, variants, region, seed, settings.to_metadata()) for i, r in enumerate(records)]
    workers = workers or min(8, os.cpu_count() or 1)
    log.info("augmenting %d crops x %d variants at %d px with %d workers", len(jobs), variants, region, workers)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            images = np.stack(list(pool.map(_augmented_variants, jobs, chunksize=64)))
    else:
        images = np.stack([_augmented_variants(job) for job in jobs])
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.tmp.npy")  # two runs may build one pool
        np.save(tmp, images)
        tmp.replace(cache_file)
    return TrainingPool(images, labels)


def sample_batch(pool: TrainingPool, crop_index: np.ndarray, tile: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, tile, tile, 3): for each crop a random variant, a random window and a random horizontal flip."""
    _, variants, region = pool.images.shape[:3]
    out = np.empty((len(crop_index), tile, tile, 3), dtype=np.uint8)
    chosen = rng.integers(0, variants, len(crop_index))
    offsets = rng.integers(0, region - tile + 1, (len(crop_index), 2))
    flips = rng.random(len(crop_index)) < 0.5
    for k, (crop, variant) in enumerate(zip(crop_index, chosen)):
        y, x = offsets[k]
        window = pool.images[crop, variant, y:y + tile, x:x + tile]
        out[k] = window[:, ::-1] if flips[k] else window
    return out


@dataclass
class TiledCrops:
    """Validation crops cut into serving tiles: `tiles[owner == i]` are the tiles of crop i."""

    tiles: np.ndarray   # (total tiles, tile, tile, 3) uint8
    owner: np.ndarray   # (total tiles,) index of the crop each tile belongs to
    labels: np.ndarray  # (crops,)


def tile_crops(records: list[PhotoRecord], tile: int, max_tiles: int) -> TiledCrops:
    """Every record decoded and tiled exactly as serving tiles an upload of that size."""
    tiles, owner = [], []
    for index, record in enumerate(records):
        crop_tiles, _ = tile_image(decode_crop(record.path), tile, max_tiles)
        tiles.append(crop_tiles)
        owner.extend([index] * len(crop_tiles))
    return TiledCrops(np.concatenate(tiles), np.array(owner, dtype=np.int64),
                      np.array([r.label for r in records], dtype=np.int64))
