"""Image folders laid out as <root>/{REAL,FAKE}/*: scanning, decode-once loading with a cache, and splits."""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils.imaging.decoding import decode_image
from utils.inference.preprocessing import CLASS_NAMES, fit_to_input

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif",
                  ".avif"}
CACHE_VERSION = 1  # bump when decoding or resizing changes, so stale caches are not reused


@dataclass
class ImageSet:
    """Decoded images of one folder at one input size: uint8 NHWC images, int64 labels (FAKE=1)."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[str]
    digests: list[str]  # sha1 of each file's bytes: identical files share a digest

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray | list[int]) -> "ImageSet":
        """The images at `indices`, in that order."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return ImageSet(self.images[index], self.labels[index], [self.paths[i] for i in index.tolist()],
                        [self.digests[i] for i in index.tolist()])


def scan_image_folder(root: str | Path) -> list[tuple[Path, int]]:
    """(path, label) for every image under root/REAL and root/FAKE, sorted; the class map is explicit."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    items: list[tuple[Path, int]] = []
    for label, class_name in enumerate(CLASS_NAMES):
        class_dir = root / class_name
        if not class_dir.is_dir():
            raise FileNotFoundError(f"{root} must contain REAL/ and FAKE/ folders; missing {class_dir}")
        files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        items.extend((path, label) for path in files)
    if not items:
        raise ValueError(f"no images found under {root}/REAL or {root}/FAKE")
    return items


def _decode_for_training(args: tuple[str, int]) -> tuple[np.ndarray, str]:
    path, input_size = args
    data = Path(path).read_bytes()
    return fit_to_input(decode_image(data).image, input_size), hashlib.sha1(data).hexdigest()


def _cache_key(items: list[tuple[Path, int]], input_size: int) -> str:
    digest = hashlib.sha1(f"v{CACHE_VERSION}:{input_size}".encode())
    for path, label in items:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_image_folder(root: str | Path, input_size: int, cache_dir: str | Path | None = None,
                      workers: int | None = None) -> ImageSet:
    """Decode every image under root once, at the model's input size; reuse a cached copy when unchanged."""
    items = scan_image_folder(root)
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{Path(root).name}-{input_size}px-{_cache_key(items, input_size)}.npz"
        if cache_file.is_file():
            with np.load(cache_file, allow_pickle=False) as cached:
                log.info("loaded %d decoded images from cache %s", len(cached["labels"]), cache_file)
                return ImageSet(torch.from_numpy(cached["images"]), torch.from_numpy(cached["labels"]),
                                cached["paths"].tolist(), cached["digests"].tolist())
    workers = workers or min(8, os.cpu_count() or 1)
    jobs = [(str(path), input_size) for path, _ in items]
    log.info("decoding %d images from %s with %d workers", len(jobs), root, workers)
    if workers > 1 and len(jobs) > 2000:
        with ProcessPoolExecutor(workers) as pool:
            decoded = list(pool.map(_decode_for_training, jobs, chunksize=512))
    else:
        decoded = [_decode_for_training(job) for job in jobs]
    images = np.stack([array for array, _ in decoded])
    labels = np.array([label for _, label in items], dtype=np.int64)
    paths = [str(path) for path, _ in items]
    digests = [digest for _, digest in decoded]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels, paths=np.array(paths), digests=np.array(digests))
        tmp.replace(cache_file)
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), paths, digests)


def split_train_val(labels: torch.Tensor | np.ndarray, digests: list[str], val_fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, class-stratified split; byte-identical files always land on the same side (no val leakage)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        groups: dict[str, list[int]] = {}
        for i in members:
            groups.setdefault(digests[i], []).append(int(i))
        group_list = list(groups.values())
        order = rng.permutation(len(group_list))
        target = round(len(members) * val_fraction)
        taken = 0
        for g in order:
            group = group_list[g]
            if taken < target:
                val_idx.extend(group)
                taken += len(group)
            else:
                train_idx.extend(group)
    return np.sort(np.array(train_idx, dtype=np.int64)), np.sort(np.array(val_idx, dtype=np.int64))
