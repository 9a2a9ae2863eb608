"""Batch CLI throughput: wall time, images/s and peak memory of `python -m backend.cli predict` over a folder.

What it does
    Runs `python -m backend.cli predict PATH --quiet --format jsonl --output <tmp file>` as a child process (PATH is
    data/cifake/test, the 20,000 CIFAKE test images, unless given) and measures its wall time, images/s, CPU time
    and peak RSS (ru_maxrss of that child, from os.wait4). Then it checks the output: every line parses as JSON,
    there is one row per image, each path once, and no row has an error. Before that it times the same command on
    a single image, so that start-up (interpreter, torch import, model loading) can be told apart from scoring:
    images/s is reported both over the whole wall time and over wall time minus that start-up.

Usage
    python bench/cli_batch.py                                   # data/cifake/test, the CLI's default flags
    python bench/cli_batch.py -- --threads 2 --batch-size 512   # flags after `--` go to the CLI unchanged
    python bench/cli_batch.py tests/fixtures/cifake_test_sample --repeat 3 --output /tmp/cli.json
    make bench                                                  # this and bench/load_test.py with their defaults

Prints a Markdown table and writes JSON (--output, default bench/results/cli.json) with the machine, the git
commit, the exact command and timestamps. The exit status is 1 if the CLI failed or its output did not check out.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PROJECT_ROOT, fmt, git_info, kib_to_mib, machine_info, markdown_table, utc_now, write_json
from utils.data.folders import IMAGE_SUFFIXES  # the suffixes the CLI scores in a folder

log = logging.getLogger("bench.cli_batch")

DEFAULT_PATH = "data/cifake/test"
CIFAKE_TEST_IMAGES = 20000


def find_images(path: Path) -> list[Path]:
    """The image files the CLI will score under a folder (recursive), or the file itself."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def check_jsonl(lines: list[str], expected_paths: set[str], root: Path | None = None) -> dict:
    """Checks the CLI's JSON Lines output against the images it was given; returns counts and problems.
    With `root`, row paths are resolved against it before comparing (expected_paths must then be resolved)."""
    parsed, unparsable, with_error, missing_p_fake = 0, 0, 0, 0
    seen: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            unparsable += 1
            continue
        parsed += 1
        path = str(row.get("path"))
        seen.append(str((root / path).resolve()) if root else path)
        if row.get("error"):
            with_error += 1
        elif not isinstance(row.get("p_fake"), (int, float)):
            missing_p_fake += 1
    seen_set = set(seen)
    problems = []
    if unparsable:
        problems.append(f"{unparsable} lines are not JSON")
    if parsed != len(expected_paths):
        problems.append(f"{parsed} rows for {len(expected_paths)} images")
    if len(seen_set) != len(seen):
        problems.append(f"{len(seen) - len(seen_set)} paths appear more than once")
    if seen_set != expected_paths:
        problems.append(f"{len(expected_paths - seen_set)} images have no row, {len(seen_set - expected_paths)} rows "
                        "name an unexpected path")
    if with_error:
        problems.append(f"{with_error} rows carry an error")
    if missing_p_fake:
        problems.append(f"{missing_p_fake} rows have no numeric p_fake")
    return {"rows": parsed, "unparsable": unparsable, "errors": with_error, "ok": not problems,
            "problems": problems}


def run_cli(target: str, extra: list[str], output: Path) -> dict:
    """Run the CLI once as a child; wall time, exit status, CPU seconds and peak RSS of exactly that child."""
    command = [sys.executable, "-m", "backend.cli", "predict", target, "--quiet", "--format", "jsonl",
               "--output", str(output), *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE)
    try:
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would add up every child so far). The CLI writes
        # little to stderr, so reading it only after the exit cannot fill the pipe.
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    return {"command": command, "exit_status": process.returncode, "wall_s": round(wall, 3),
            "cpu_user_s": round(usage.ru_utime, 3), "cpu_system_s": round(usage.ru_stime, 3),
            "peak_rss_mib": kib_to_mib(usage.ru_maxrss), "stderr_tail": stderr[-2000:]}


def get_args_parser() -> argparse.ArgumentParser:
    """The command-line flags; everything after `--` goes to the CLI."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [PATH] [options] [-- CLI flags]")
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH,
                        help=f"folder or image to score, relative to the project root (default {DEFAULT_PATH}: all "
                             f"{CIFAKE_TEST_IMAGES:,})")
    parser.add_argument("--expect", type=int, help="the image count to require (default: 20,000 for the default "
                                                   "path, otherwise the count found)")
    parser.add_argument("--repeat", type=int, default=1, help="runs over the whole folder (1)")
    parser.add_argument("--no-startup", action="store_true", help="skip the single-image start-up run")
    parser.add_argument("--output", default=str(PROJECT_ROOT / "bench" / "results" / "cli.json"))
    return parser


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our own arguments, and those after the first `--` (for the CLI)."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    """Time the CLI over the folder, check its output, print a table and write JSON."""
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = get_args_parser().parse_args(own)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    target = Path(args.path) if Path(args.path).is_absolute() else PROJECT_ROOT / args.path
    if not target.exists():
        hint = " (run `make data` to unpack CIFAKE)" if args.path == DEFAULT_PATH else ""
        raise SystemExit(f"error: {target} does not exist{hint}")
    images = find_images(target)
    expected = args.expect if args.expect is not None else (CIFAKE_TEST_IMAGES if args.path == DEFAULT_PATH
                                                            else len(images))
    if len(images) != expected:
        raise SystemExit(f"error: found {len(images):,} images under {target}, expected {expected:,}")
    arg_path = args.path
    expected_paths = {str(p.resolve()) for p in images}  # the CLI writes paths as given; compare them resolved

    document = {"benchmark": "cli_batch", "started_at": utc_now(), "machine": machine_info(), "git": git_info(),
                "path": arg_path, "images": len(images), "cli_flags": extra, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        startup = None
        if not args.no_startup:
            log.info("start-up run on one image")
            one = images[0]
            startup = run_cli(str(one.relative_to(PROJECT_ROOT)) if one.is_relative_to(PROJECT_ROOT) else str(one),
                              extra, Path(tmp) / "one.jsonl")
            document["startup"] = startup
            if startup["exit_status"] != 0:
                log.error("the single-image run failed (%d): %s", startup["exit_status"], startup["stderr_tail"])
        for index in range(args.repeat):
            log.info("run %d of %d: %d images", index + 1, args.repeat, len(images))
            output = Path(tmp) / f"run{index}.jsonl"
            run = run_cli(arg_path, extra, output)
            lines = output.read_text(encoding="utf-8").splitlines() if output.exists() else []
            run["check"] = check_jsonl(lines, expected_paths, root=PROJECT_ROOT)
            run["images_per_s"] = round(len(images) / run["wall_s"], 1)
            if startup and startup["exit_status"] == 0 and run["wall_s"] > startup["wall_s"]:
                run["images_per_s_after_startup"] = round(len(images) / (run["wall_s"] - startup["wall_s"]), 1)
            if run["exit_status"] != 0:
                log.error("the CLI exited with %d: %s", run["exit_status"], run["stderr_tail"])
            if not run["check"]["ok"]:
                log.error("output check failed: %s", "; ".join(run["check"]["problems"]))
            document["runs"].append(run)
    walls = [r["wall_s"] for r in document["runs"]]
    document["summary"] = {"median_wall_s": round(statistics.median(walls), 3), "best_wall_s": min(walls),
                           "median_images_per_s": round(len(images) / statistics.median(walls), 1),
                           "max_peak_rss_mib": max(r["peak_rss_mib"] for r in document["runs"])}
    document["finished_at"] = utc_now()
    write_json(Path(args.output), document)
    log.info("wrote %s", args.output)
    sys.stderr.flush()
    print(report(document), flush=True)
    failed = any(r["exit_status"] != 0 or not r["check"]["ok"] for r in document["runs"])
    return 1 if failed else 0


def report(document: dict) -> str:
    """The Markdown printed on stdout."""
    machine, startup = document["machine"], document.get("startup")
    rows = [[f"run {i + 1}", f"{document['images']:,}", fmt(r["wall_s"], 2), fmt(r["images_per_s"]),
             fmt(r.get("images_per_s_after_startup")), fmt(r["cpu_user_s"] + r["cpu_system_s"]),
             fmt(r["peak_rss_mib"]), r["exit_status"], "ok" if r["check"]["ok"] else "; ".join(r["check"]["problems"])]
            for i, r in enumerate(document["runs"])]
    if startup:
        rows.insert(0, ["start-up (1 image)", 1, fmt(startup["wall_s"], 2), None, None,
                        fmt(startup["cpu_user_s"] + startup["cpu_system_s"]), fmt(startup["peak_rss_mib"]),
                        startup["exit_status"], None])
    return "\n".join([
        f"## Batch CLI ({document['started_at']})", "",
        f"machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores ({machine['usable_cores']} "
        f"usable), load average at start {' '.join(machine['loadavg_at_start'] or [])}",
        f"commit: {document['git']['commit']}{' (with uncommitted changes)' if document['git']['dirty'] else ''}",
        f"command: python -m backend.cli predict {document['path']} --quiet --format jsonl --output FILE "
        f"{' '.join(document['cli_flags'])}".rstrip(), "",
        markdown_table(["run", "images", "wall s", "images/s", "images/s after start-up", "CPU s", "peak RSS MiB",
                        "exit", "output check"], rows)])


if __name__ == "__main__":
    sys.exit(main())
