"""Preparing CIFAKE (or any REAL/FAKE dataset) from an archive or a folder into the project's data folder."""
from __future__ import annotations

import logging
import shutil
import tarfile
import zipfile
from pathlib import Path

from utils.data import load_image_folder, scan_image_folder

log = logging.getLogger(__name__)


def _find_dataset_root(folder: Path) -> Path:
    """The folder holding train/ and test/ (each with REAL/ and FAKE/), searched up to two levels down."""
    candidates = [folder] + [p for p in folder.iterdir() if p.is_dir()]
    candidates += [q for p in candidates[1:] for q in p.iterdir() if q.is_dir()]
    for candidate in candidates:
        if all((candidate / split / cls).is_dir() for split in ("train", "test") for cls in ("REAL", "FAKE")):
            return candidate
    raise FileNotFoundError(f"no folder with train/{{REAL,FAKE}} and test/{{REAL,FAKE}} found in {folder}")


def _extract(archive: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            for member in handle.namelist():
                target = (destination / member).resolve()
                if not target.is_relative_to(destination.resolve()):
                    raise ValueError(f"archive member escapes the destination: {member}")
            handle.extractall(destination)
    else:
        with tarfile.open(archive) as handle:
            handle.extractall(destination, filter="data")  # refuses links and paths outside destination


def prepare_dataset(source: str | Path, destination: str | Path, cache_dir: str | Path | None,
                    input_size: int = 32) -> Path:
    """Put the dataset at <destination>/cifake/{train,test}/{REAL,FAKE} and pre-decode it; return that root."""
    source, destination = Path(source), Path(destination)
    target = destination / "cifake"
    if source.is_file():
        staging = destination / ".extract"
        if staging.exists():
            shutil.rmtree(staging)
        log.info("extracting %s", source)
        _extract(source, staging)
        found = _find_dataset_root(staging)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        found.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
    elif source.is_dir():
        found = _find_dataset_root(source)
        if found.resolve() != target.resolve():
            if target.exists() or target.is_symlink():
                raise FileExistsError(f"{target} already exists; remove it to link another copy")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(found.resolve(), target_is_directory=True)
    else:
        raise FileNotFoundError(f"no archive or folder at {source}")
    for split in ("train", "test"):
        items = scan_image_folder(target / split)
        log.info("%s: %d images (%d FAKE)", split, len(items), sum(label for _, label in items))
        if cache_dir is not None:
            load_image_folder(target / split, input_size, cache_dir)
    return target
