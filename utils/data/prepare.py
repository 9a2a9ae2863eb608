"""Preparing CIFAKE (or any REAL/FAKE dataset) and the photos-v1 corpus from an archive or a folder into the
project's data folder."""
from __future__ import annotations

import logging
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from utils.data.folders import load_image_folder, scan_image_folder

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


def _place(source: Path, target: Path, find: Callable[[Path], Path]) -> None:
    """Put the dataset `find` locates inside `source` at `target`: extracted from an archive (replacing what was
    there), or linked from a folder."""
    if source.is_file():
        staging = target.parent / ".extract"
        if staging.exists():
            shutil.rmtree(staging)
        log.info("extracting %s", source)
        _extract(source, staging)
        found = find(staging)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        found.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
    elif source.is_dir():
        found = find(source)
        if found.resolve() != target.resolve():
            if target.exists() or target.is_symlink():
                raise FileExistsError(f"{target} already exists; remove it to link another copy")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(found.resolve(), target_is_directory=True)
    else:
        raise FileNotFoundError(f"no archive or folder at {source}")


def prepare_dataset(source: str | Path, destination: str | Path, cache_dir: str | Path | None,
                    input_size: int = 32) -> Path:
    """Put the dataset at <destination>/cifake/{train,test}/{REAL,FAKE} and pre-decode it; return that root."""
    target = Path(destination) / "cifake"
    _place(Path(source), target, _find_dataset_root)
    for split in ("train", "test"):
        items = scan_image_folder(target / split)
        log.info("%s: %d images (%d FAKE)", split, len(items), sum(label for _, label in items))
        if cache_dir is not None:
            load_image_folder(target / split, input_size, cache_dir)
    return target


def _find_photo_corpus(folder: Path) -> Path:
    """The folder holding manifest.csv beside REAL/ and FAKE/, searched up to two levels down."""
    candidates = [folder] + [p for p in folder.iterdir() if p.is_dir()]
    candidates += [q for p in candidates[1:] for q in p.iterdir() if q.is_dir()]
    for candidate in candidates:
        if (candidate / "manifest.csv").is_file() and all((candidate / c).is_dir() for c in ("REAL", "FAKE")):
            return candidate
    raise FileNotFoundError(f"no manifest.csv beside REAL/ and FAKE/ found in {folder}")


def is_photo_corpus_source(source: str | Path) -> bool:
    """Whether `source` (an archive or a folder) is the photo corpus rather than a train/test dataset."""
    source = Path(source)
    if source.is_dir():
        try:
            return bool(_find_photo_corpus(source))
        except FileNotFoundError:
            return False
    if source.is_file() and not zipfile.is_zipfile(source):
        try:
            with tarfile.open(source) as handle:
                return any(Path(name).name == "manifest.csv" for name in handle.getnames())
        except tarfile.TarError:
            return False  # not an archive at all: prepare_dataset says what is wrong with it
    return False


def prepare_photo_corpus(source: str | Path, target: str | Path) -> Path:
    """Put the photo corpus (manifest.csv, REAL/, FAKE/) at `target`, from an archive (extracted) or a folder
    (linked); check the manifest against the files; return `target`."""
    from utils.data.photo_corpus import read_manifest

    target = Path(target)
    _place(Path(source), target, _find_photo_corpus)
    records = read_manifest(target)
    missing = [r.path.name for r in records if not r.path.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files of the manifest are missing, e.g. {missing[0]}")
    log.info("photo corpus: %d crops (%d FAKE) of %d source images", len(records), sum(r.label for r in records),
             len({r.group for r in records}))
    return target
