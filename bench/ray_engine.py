"""The batch CLI's two engines side by side: images/s of `--engine local` and `--engine ray` on this machine.

What it does
    For each set (the 20,000 images of CIFAKE's test split, and 1,000 photos: the photo corpus's files, else
    sd-vs-coco-200's 200 five times over as copies in a temporary folder) it runs
    `python -m backend.cli predict SET --format jsonl` once per engine, and reads its output as it streams:
    start-up is the whole run of the same command on one image of the set (process start, model load; for Ray also
    starting Ray and its actors), and throughput after start-up is the set's rows over its total time less that.
    (The time to the first row is no measure for Ray: rows come in input order, so they wait for the first block.)
    It then checks that both engines gave the same rows (p_fake to 1e-5) in the same order, and prints a table.

Usage
    python bench/ray_engine.py [--cifake data/cifake/test] [--photos data/photos-v1] [--output bench/results/ray.json]
The machine should be otherwise idle.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PROJECT_ROOT, git_info, machine_info, markdown_table, utc_now, write_json  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def _timed_run(target: Path, engine: str, extra: list[str]) -> tuple[float, list[dict], int, list[str]]:
    command = [sys.executable, "-m", "backend.cli", "predict", str(target), "--quiet", "--engine", engine, *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    return time.perf_counter() - started, [json.loads(line) for line in done.stdout.splitlines()], \
        done.returncode, command


def run_engine(target: Path, one_image: Path, engine: str, extra: list[str]) -> dict:
    startup, _, _, _ = _timed_run(one_image, engine, extra)
    total, rows, status, command = _timed_run(target, engine, extra)
    steady = len(rows) / (total - startup) if total > startup else None
    return {"engine": engine, "command": " ".join(command[1:]), "rows": len(rows), "exit": status,
            "startup_s": round(startup, 2), "total_s": round(total, 2),
            "images_per_s_overall": round(len(rows) / total, 1), "images_per_s_after_startup": round(steady or 0, 1),
            "_rows": rows}


def same_rows(a: list[dict], b: list[dict]) -> bool:
    if [r["path"] for r in a] != [r["path"] for r in b]:
        return False
    for x, y in zip(a, b):
        for key, value in x.items():
            if key.startswith("p_fake") and abs(value - y.get(key, float("inf"))) > 1e-5:
                return False
            if not key.startswith("p_fake") and y.get(key) != value:
                return False
    return True


def photo_set(photos: Path, tmp: Path, count: int) -> Path:
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:count] if photos.is_dir() \
        else []
    if len(files) < count:
        source = sorted((PROJECT_ROOT / "data" / "sd-vs-coco-200").rglob("*.jpg"))
        files = [source[i % len(source)] for i in range(count)]
    folder = tmp / "photos"
    folder.mkdir()
    for index, path in enumerate(files):
        shutil.copy(path, folder / f"{index:05d}{path.suffix}")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cifake", default=str(PROJECT_ROOT / "data" / "cifake" / "test"))
    parser.add_argument("--photos", default=str(PROJECT_ROOT / "data" / "photos-v1"))
    parser.add_argument("--photo-count", type=int, default=1000)
    parser.add_argument("--output", default=str(PROJECT_ROOT / "bench" / "results" / "ray.json"))
    args = parser.parse_args(argv)
    document = {"benchmark": "ray_engine", "started_at": utc_now(), "machine": machine_info(), "git": git_info(),
                "sets": []}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        sets = {"CIFAKE test (20,000)": Path(args.cifake),
                f"photos ({args.photo_count:,})": photo_set(Path(args.photos), Path(tmp), args.photo_count)}
        for name, target in sets.items():
            one_image = next(p for p in sorted(target.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES)
            local = run_engine(target, one_image, "local", [])
            ray = run_engine(target, one_image, "ray", ["--batch-size", "128"])
            entry = {"set": name, "local": local, "ray": ray, "identical": same_rows(local["_rows"], ray["_rows"]),
                     "ray_vs_local": round(ray["images_per_s_after_startup"] /
                                           max(local["images_per_s_after_startup"], 1e-9), 2)}
            for result in (local, ray):
                del result["_rows"]
            document["sets"].append(entry)
            print(json.dumps(entry), file=sys.stderr)
    write_json(Path(args.output), document)
    rows = [[s["set"], engine, s[engine]["rows"], s[engine]["startup_s"], s[engine]["total_s"],
             s[engine]["images_per_s_overall"], s[engine]["images_per_s_after_startup"],
             s["ray_vs_local"] if engine == "ray" else "", s["identical"] if engine == "ray" else ""]
            for s in document["sets"] for engine in ("local", "ray")]
    machine = document["machine"]
    print(f"## Batch engines ({document['started_at']})\n\nmachine: {machine['cpu_model']}, "
          f"{machine['logical_cores']} logical cores; commit {document['git']['commit']}\n")
    print(markdown_table(["set", "engine", "rows", "start-up s", "total s", "img/s overall", "img/s after start-up",
                          "ray / local", "same rows"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
