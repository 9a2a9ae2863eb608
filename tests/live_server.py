"""Start the real server (`python -m backend`) on a free loopback port for tests, and talk to it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The dev server (`python -m backend`) or the production one (`python -m backend.serve`) as a subprocess on
    127.0.0.1; stopped by `stop()`."""

    def __init__(self, weights_dir: str | Path | None = None, extra_env: dict | None = None,
                 production: bool = False) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **(extra_env or {})}
        if weights_dir:
            env["DETECTOR_WEIGHTS_DIR"] = str(weights_dir)
        # The server logs every request: a file, unlike an undrained pipe, never fills up and blocks it.
        self.log = tempfile.TemporaryFile()
        if production:
            command = [sys.executable, "-m", "backend.serve", "--bind", f"127.0.0.1:{self.port}"]
        else:
            command = [sys.executable, "-m", "backend", "--port", str(self.port)]
        self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                status, _ = self.request("GET", "/api/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server did not become ready")

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.base + path, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def process_tree(self) -> list[int]:
        """The server's pid and every descendant's (granian's workers are children of its main process)."""
        pids, frontier = [], [self.process.pid]
        while frontier:
            pid = frontier.pop()
            pids.append(pid)
            for task in Path(f"/proc/{pid}/task").iterdir():
                frontier += [int(child) for child in (task / "children").read_text().split()]
        return pids

    def reset_peak_rss(self) -> dict[int, int]:
        """Start a new peak-RSS window in every process of the server (Linux's clear_refs); their RSS now, in KiB."""
        now = {}
        for pid in self.process_tree():
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            now[pid] = _status_kib(pid, "VmRSS")
        return now

    def peak_rss_rise_mib(self, before: dict[int, int]) -> float:
        """The largest rise of any server process's peak RSS since `reset_peak_rss` returned `before`."""
        return max(_status_kib(pid, "VmHWM") - rss for pid, rss in before.items()) / 1024

    def largest_rss_kib(self) -> int:
        """The RSS of the server's largest process (with granian: a worker), in KiB."""
        return max(_status_kib(pid, "VmRSS") for pid in self.process_tree())

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
