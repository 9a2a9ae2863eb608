"""Helpers shared by the benchmarks: percentiles, /proc readings, machine and git facts, Markdown tables.

Standard library only, and nothing from backend/ or utils/: the benchmarks see the service from outside (HTTP, CLI,
/proc), so they keep measuring the same thing while the server code changes underneath.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Sequence

from utils.evaluation.markdown import markdown_table  # noqa: F401  (the benchmarks' tables come from here)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KIB_PER_MIB = 1024


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between ranks (NumPy's default); None if empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary_ms(latencies_s: Sequence[float]) -> dict:
    """Count, mean, min, p50/p90/p99 and max of latencies given in seconds, reported in milliseconds."""
    if not latencies_s:
        return {"count": 0, "mean": None, "min": None, "p50": None, "p90": None, "p99": None, "max": None}
    ms = [value * 1000 for value in latencies_s]
    return {"count": len(ms), "mean": round(sum(ms) / len(ms), 3), "min": round(min(ms), 3),
            "p50": round(percentile(ms, 50), 3), "p90": round(percentile(ms, 90), 3),
            "p99": round(percentile(ms, 99), 3), "max": round(max(ms), 3)}


# --- /proc -------------------------------------------------------------------------------------------------------

def parse_proc_status(text: str) -> dict[str, int]:
    """Memory fields of a /proc/<pid>/status text in KiB (VmRSS, VmHWM, ...) plus the thread count."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmSize", "VmPeak", "RssAnon", "RssFile", "RssShmem", "Threads"):
            parts = value.split()
            if parts:
                fields[key] = int(parts[0])
    return fields


def proc_status(pid: int) -> dict[str, int]:
    """parse_proc_status() of a live process; {} if it has gone."""
    try:
        return parse_proc_status(Path(f"/proc/{pid}/status").read_text())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}


def parse_proc_stat_cpu_ticks(text: str) -> int:
    """utime + stime (clock ticks, all threads) from a /proc/<pid>/stat line; the command name may hold spaces."""
    after_name = text[text.rindex(")") + 2:].split()
    # after_name[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(after_name[11]) + int(after_name[12])


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a live process has used; None if it has gone."""
    try:
        ticks = parse_proc_stat_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Direct children of a process, from /proc/<pid>/task/*/children, or by scanning /proc where that is absent."""
    task_dir = Path(f"/proc/{pid}/task")
    children: list[int] = []
    found_interface = False
    try:
        for task in task_dir.iterdir():
            path = task / "children"
            if path.exists():
                found_interface = True
                children.extend(int(token) for token in path.read_text().split())
    except (FileNotFoundError, ProcessLookupError):
        return []
    if found_interface:
        return sorted(set(children))
    return _children_by_scan(pid)


def _children_by_scan(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        parent = int(text[text.rindex(")") + 2:].split()[1])
        if parent == pid:
            children.append(int(entry.name))
    return sorted(children)


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (depth first)."""
    tree = [pid]
    for child in child_pids(pid):
        tree.extend(process_tree(child))
    return tree


def kib_to_mib(kib: float | None) -> float | None:
    """KiB to MiB rounded to 0.1, None stays None."""
    return None if kib is None else round(kib / KIB_PER_MIB, 1)


# --- facts about the run -----------------------------------------------------------------------------------------

def utc_now() -> str:
    """The current time as an ISO 8601 UTC string."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine_info() -> dict:
    """CPU model, core counts, memory, OS, Python and the versions of the packages that matter for speed."""
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_kib = int(line.split()[1])
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = None
    versions = {}
    for package in ("torch", "torchvision", "granian", "flask", "werkzeug", "pillow", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu_model": cpu_model, "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "mem_total_mib": kib_to_mib(mem_total_kib), "loadavg_at_start": load,
            "platform": platform.platform(), "python": sys.version.split()[0], "packages": versions}


def git_info(root: Path = PROJECT_ROOT) -> dict:
    """The commit checked out and whether the working tree has uncommitted changes."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def fmt(value: float | None, digits: int = 1) -> str | None:
    """A number with a fixed count of decimals, None unchanged."""
    return None if value is None else f"{value:.{digits}f}"


def write_json(path: Path, document: dict) -> None:
    """Write a JSON document, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
