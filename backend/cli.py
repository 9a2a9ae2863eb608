"""Batch scoring from the command line.

    python -m backend.cli predict PATH [PATH ...] [--format jsonl|csv] [--output FILE]

PATHs are image files or folders (searched recursively). Each image gets one row: p_fake per model, the ensemble
p_fake, the verdict and whether it is uncertain; unreadable files get an error instead. Images are scored in batches.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm import tqdm

from backend.detector import Detector
from backend.settings import detector_options, serving_settings
from utils.data.folders import IMAGE_SUFFIXES
from utils.errors import DetectorError, ModelUnavailable
from utils.imaging.decoding import decode_image


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def iter_image_paths(paths: list[str]) -> Iterator[Path]:
    """Files named directly, then image files found under each folder (sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def thumbnail_model_names(settings: dict) -> list[str]:
    """The names the rows' p_fake columns use (the thumbnail pair's), read from the checkpoints without loading them
    into a runtime, in the order the detector lists them."""
    from utils.inference.checkpoint import read_checkpoint

    names = []
    for key, file in settings["model_files"].items():
        path = Path(settings["weights_dir"]) / Path(file).name
        if key.endswith("_photo") and not path.is_file():  # optional, as in Detector.from_weights_dir
            continue
        metadata = read_checkpoint(path)["metadata"]
        if metadata.get("profile", "thumbnail") == "thumbnail":
            names.append(metadata["name"])
    if not names:
        raise ModelUnavailable("no thumbnail (CIFAKE) models are loaded")
    return names


def _chunks(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _read_and_decode(chunk: list[Path], max_pixels: int) -> tuple[list, list[bytes], list[dict]]:
    """Decoded images and raw bytes of the readable files, and one row per path (with `error` for the others)."""
    decoded, raw, rows = [], [], []
    for path in chunk:
        row = {"path": str(path)}
        try:
            data = path.read_bytes()
            decoded.append(decode_image(data, max_pixels))
            raw.append(data)
        except DetectorError as error:
            row["error"] = error.message
        except OSError as error:
            row["error"] = f"cannot read file: {error.strerror}"
        rows.append(row)
    return decoded, raw, rows


def score_chunk(chunk: list[Path], detector: Detector, max_pixels: int) -> list[dict]:
    """Read, decode and score one chunk; one flat row per path, in order."""
    decoded, raw, rows = _read_and_decode(chunk, max_pixels)
    batch = detector.scorer([d.pixels for d in decoded]) if decoded else None
    readable = iter(range(len(decoded)))
    for row in rows:
        if "error" in row:
            continue
        i = next(readable)
        provenance = detector.provenance(decoded[i], raw[i])
        verdict = detector.verdict(batch, i, provenance)
        row.update(profile=batch.profiles[i], tiles=int(batch.tiles[i]))
        for model_result in detector.model_results(batch, i):
            row[f"p_fake_{model_result['name']}"] = model_result["p_fake"]
        row.update(p_fake=verdict["p_fake"], verdict=verdict["label"], uncertain=verdict["uncertain"],
                   basis=verdict["basis"])
        c2pa = provenance["c2pa"]
        row.update(declared=provenance["declared"], declared_by=provenance["source"],
                   generator=provenance["generator"], c2pa_valid=None if c2pa is None else c2pa["valid"])
    return rows


def score(paths: list[Path], detector: Detector, batch_size: int, max_pixels: int,
          progress: bool = True, workers: int = 1) -> Iterator[dict]:
    """One flat row per path, in order.

    `workers` chunks are read, decoded and scored at once, each on its own thread. Decoding releases the GIL for
    most of its work and the model runtimes release it while they run, so on a machine with that many cores the
    chunks proceed in parallel: two single-threaded chunks at a time scored CIFAKE's test split faster than one
    chunk at a time on two runtime threads (docs/speed.md). At most `workers` chunks are being decoded
    and scored, and one more waits its turn. When the caller stops early or a chunk fails, chunks not yet started
    are cancelled.
    """
    chunks = _chunks(paths, batch_size)
    workers = max(1, workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="score")
    pending: deque[Future] = deque()
    try:
        with tqdm(total=len(paths), unit="img", disable=not progress, file=sys.stderr) as bar:
            for chunk in islice(chunks, workers + 1):
                pending.append(pool.submit(score_chunk, chunk, detector, max_pixels))
            while pending:
                rows = pending.popleft().result()
                chunk = next(chunks, None)
                if chunk is not None:
                    pending.append(pool.submit(score_chunk, chunk, detector, max_pixels))
                yield from rows
                bar.update(len(rows))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def get_args_parser() -> argparse.ArgumentParser:
    """The command line: `predict PATHS...` and its flags."""
    parser = argparse.ArgumentParser(prog="python -m backend.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="score image files or folders")
    predict.add_argument("paths", nargs="+", help="image files or folders")
    predict.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    predict.add_argument("--output", "-o", help="file to write (default: standard output)")
    predict.add_argument("--batch-size", type=int, default=128)
    predict.add_argument("--weights-dir", help="default: saved_models/")
    predict.add_argument("--threads", type=_positive_int, default=None,
                         help="CPU threads to use (default: all cores)")
    predict.add_argument("--workers", type=_positive_int, default=None,
                         help="chunks scored at once, each on its own thread (default: as many as --threads); "
                              "each model runtime gets threads/workers threads, at least one")
    predict.add_argument("--runtime", choices=("onnxruntime", "torch"), default=None,
                         help="forward-pass runtime (default: config serving.runtime)")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: this process (default); ray: Ray Data, one detector per worker "
                              "(pip install -r requirements-ray.txt)")
    predict.add_argument("--address", help="with --engine ray: join this Ray cluster (host:port, ray://host:port "
                                           "or auto) instead of starting a local one")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, with the Ray engine's needs checked up front (a usage error exits 2 before anything loads)."""
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.address and args.engine != "ray":
        parser.error("--address needs --engine ray")
    if args.engine == "ray":
        try:
            from backend.ray_engine import check_address

            check_address(args.address)
        except ImportError:
            parser.error("--engine ray needs Ray: pip install -r requirements-ray.txt")
        except ValueError as error:
            parser.error(str(error))
    return args


class UsageError(Exception):
    """A problem the user can fix (no weights, no images, no Ray cluster): one line on stderr, exit status 2."""


def row_columns(model_names: list[str]) -> list[str]:
    """The output's columns, in order: one p_fake per model of the thumbnail pair, then the verdict and evidence."""
    return (["path", "profile", "tiles"] + [f"p_fake_{name}" for name in model_names]
            + ["p_fake", "verdict", "uncertain", "basis", "declared", "declared_by", "generator", "c2pa_valid",
               "error"])


def load_engine(args: argparse.Namespace, settings: dict, workers: int,
                runtime_threads: int) -> tuple[list[str], Callable[[list[Path]], Iterator[dict]]]:
    """The output's columns, and a function from paths to rows in input order on the chosen engine. The local
    engine loads its detector here, so missing weights are reported before any file is looked at."""
    try:
        if args.engine == "local":
            detector = Detector.from_weights_dir(settings["weights_dir"], settings["model_files"],
                                                 runtime=settings["runtime"], threads=runtime_threads,
                                                 explanations=False, **detector_options(settings))
            return row_columns(detector.model_names), lambda paths: score(
                paths, detector, args.batch_size, settings["max_pixels"], progress=not args.quiet, workers=workers)
        # each Ray worker loads its own detector; the columns come from the checkpoints' metadata
        columns = row_columns(thumbnail_model_names(settings))
    except DetectorError as error:
        raise UsageError(error.message) from None

    def rows_on_ray(paths: list[Path]) -> Iterator[dict]:
        from backend.ray_engine import score_with_ray, start_ray

        try:
            start_ray(args.address, cpus=workers * runtime_threads)
        except RuntimeError as error:
            raise UsageError(str(error)) from None
        return score_with_ray(paths, settings, args.batch_size, workers, runtime_threads, progress=not args.quiet)
    return columns, rows_on_ray


def write_rows(rows_iterator: Iterator[dict], columns: list[str], output: str | None, fmt: str) -> int:
    """Write every row (CSV or JSON lines) to `output` or standard output; returns how many rows are errors."""
    out = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    failures = 0
    try:
        writer = csv.DictWriter(out, fieldnames=columns) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        with closing(rows_iterator) as rows:
            for row in rows:
                failures += "error" in row
                if writer:
                    writer.writerow(row)
                else:
                    out.write(json.dumps(row) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return failures


def main(argv: list[str] | None = None) -> int:
    """Parse flags, score, write rows; exit 0 if every file was scored, 1 if some failed, 2 on usage errors."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    threads = args.threads or os.cpu_count() or 1
    workers = args.workers or threads
    runtime_threads = max(1, threads // workers)
    torch.set_num_threads(runtime_threads)
    overrides = {key: value for key, value in (("weights_dir", args.weights_dir), ("runtime", args.runtime)) if value}
    settings = serving_settings(overrides)
    try:
        columns, rows_for = load_engine(args, settings, workers, runtime_threads)
        paths = list(iter_image_paths(args.paths))
        if not paths:
            raise UsageError("no image files found")
        rows = rows_for(paths)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = write_rows(rows, columns, args.output, args.format)
    if failures:
        print(f"{failures} of {len(paths)} files could not be scored", file=sys.stderr)
    return 1 if failures else 0


def exit_without_teardown(code: int) -> None:
    """End the process once everything is written, skipping the interpreter's teardown.

    Unloading torch and its libraries at exit took 0.8-0.9 s here, a fifth of the command's start-up cost on a
    CIFAKE-sized batch. The rows are written and closed by now; the standard streams and logs are flushed first.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    exit_without_teardown(main())
