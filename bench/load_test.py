"""Load test of the production server: latency, throughput, errors and memory of POST /api/predict.

What it does
    1. Starts the service as in production (`python -m backend.serve`: granian with the app's worker processes)
       on a free loopback port with the weights in saved_models/, and waits until /api/ready answers 200 on every
       worker. Workers, threads and torch threads are the production server's defaults (backend/serve.py) unless
       --workers / --threads / --torch-threads set DETECTOR_WORKERS / DETECTOR_THREADS / DETECTOR_TORCH_THREADS.
    2. For every cell (input x clients x Grad-CAM mode) it forks N client processes. Each keeps one HTTP/1.1
       keep-alive connection (http.client) and sends a pre-built multipart body, with a fresh boundary each time as
       real clients do, so a client costs little CPU. After a short warm-up (503s while a worker still loads are
       retried) all clients start together; the cell stops after --requests requests in total or --seconds of
       wall time, whichever comes first.
    3. Records client-side latency per request (p50/p90/p99), errors (non-200 answers and exceptions), throughput
       (200 answers / wall time of the measured phase), the server's CPU seconds per request (/proc/<pid>/stat of
       the master and workers, and per worker: the split shows how the clients' connections landed on the workers)
       and the server's memory (/proc/<pid>/status: VmRSS now, VmHWM peak, summed over the
       master and workers; the sum is also sampled during each cell).
    4. Soak (--soak N): N requests of the 32x32 input without Grad-CAM from 4 clients; prints the workers' total
       RSS after the first 100 requests and after all N, and their ratio.
    5. Prints Markdown tables and writes JSON (--output) with the machine, git commit, server config, inputs
       (bytes, sha256) and timestamps. The server is always shut down, on errors and Ctrl-C too.

Inputs
    cifake32  a 32x32 CIFAKE test JPEG from tests/fixtures/cifake_test_sample (committed)
    sd512     a 512x512 JPEG from sd-vs-coco-200 (data/sd-vs-coco-200, else ../shared/data/sd-vs-coco-200.tar.gz
              unpacked into a temporary folder)
    jpeg2048  that image resized to 2048x1536 and saved as JPEG (quality 90, about 350 KB)
    png512    that image saved as PNG

Usage
    python bench/load_test.py                          # everything: 16 cells + a 10,000-request soak
    python bench/load_test.py --inputs cifake32 --clients 1 --requests 20 --seconds 5 --soak 0    # a smoke run
    python bench/load_test.py --workers 2 --threads 1 --torch-threads 1 --output bench/results/load-w2t1.json
    make bench                                          # this and bench/cli_batch.py with their defaults

The machine should be otherwise idle; the clients share it with the server (their CPU time is reported too).
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import logging
import multiprocessing as mp
import os
import queue
import resource
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (PROJECT_ROOT, child_pids, cpu_seconds, fmt, git_info, kib_to_mib, latency_summary_ms,
                          machine_info, markdown_table, proc_status, utc_now, write_json)

log = logging.getLogger("bench.load_test")

INPUT_NAMES = ("cifake32", "sd512", "jpeg2048", "png512")
MODES = ("gradcam", "no-gradcam")
CIFAKE_SAMPLE = PROJECT_ROOT / "tests" / "fixtures" / "cifake_test_sample"
SD_DIR = PROJECT_ROOT / "data" / "sd-vs-coco-200"
SD_ARCHIVE = PROJECT_ROOT.parent / "shared" / "data" / "sd-vs-coco-200.tar.gz"
SD_PREFERRED = "REAL/coco_00000.jpg"  # gives a ~357 KB 2048x1536 JPEG at quality 90, near the reference's 350 KB
SOAK_FIRST = 100
IDLE_RECONNECT_S = 1.0  # below common keep-alive timeouts (2 s and up): a client never writes into a closing socket


# --- request bodies ----------------------------------------------------------------------------------------------

def build_multipart(field_name: str, filename: str, content_type: str, data: bytes,
                    boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field; returns (body, Content-Type header value)."""
    boundary = boundary or f"bench-{uuid.uuid4().hex}"
    if boundary.encode() in data:
        raise ValueError("the boundary occurs in the data")
    head = (f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass
class BenchInput:
    """One image the load test sends, with the facts the report needs."""
    name: str
    filename: str
    content_type: str
    data: bytes
    width: int
    height: int
    source: str
    notes: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"name": self.name, "filename": self.filename, "content_type": self.content_type,
                "bytes": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest(),
                "width": self.width, "height": self.height, "source": self.source, **self.notes}


def _pillow():
    from PIL import Image  # only the input preparation needs Pillow
    return Image


def _find_sd_image(sd_image: str | None, tmp: Path) -> Path:
    """A 512x512 JPEG of sd-vs-coco-200: --sd-image, else data/, else the shared archive unpacked into tmp."""
    if sd_image:
        path = Path(sd_image)
        if not path.is_file():
            raise SystemExit(f"error: --sd-image {sd_image} does not exist")
        return path
    folder = SD_DIR
    if not any(folder.glob("*/*.jpg")):
        if not SD_ARCHIVE.is_file():
            raise SystemExit(f"error: sd-vs-coco-200 not found: neither {SD_DIR} (run `make data`) nor "
                             f"{SD_ARCHIVE} exists. Pass --sd-image PATH to a 512x512 JPEG, or leave the "
                             "large inputs out with --inputs cifake32.")
        log.info("unpacking %s into %s", SD_ARCHIVE, tmp)
        with tarfile.open(SD_ARCHIVE) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")]
            archive.extractall(tmp, members=members, filter="data")
        folder = tmp / "sd-vs-coco-200"
    Image = _pillow()
    candidates = [folder / SD_PREFERRED] + sorted(folder.glob("REAL/*.jpg")) + sorted(folder.glob("FAKE/*.jpg"))
    for path in candidates:
        if path.is_file():
            with Image.open(path) as image:
                if image.size == (512, 512) and image.format == "JPEG":
                    return path
    raise SystemExit(f"error: no 512x512 JPEG found under {folder}")


def prepare_inputs(names: list[str], sd_image: str | None, tmp: Path, big_quality: int) -> list[BenchInput]:
    """Load or generate the requested inputs, in the order given."""
    Image = _pillow()
    inputs: dict[str, BenchInput] = {}
    if "cifake32" in names:
        files = sorted(CIFAKE_SAMPLE.rglob("*.jpg"))
        if not files:
            raise SystemExit(f"error: no CIFAKE sample images under {CIFAKE_SAMPLE}")
        path = files[0]
        with Image.open(path) as image:
            size = image.size
        inputs["cifake32"] = BenchInput("cifake32", path.name, "image/jpeg", path.read_bytes(), *size,
                                        source=str(path.relative_to(PROJECT_ROOT)))
    if {"sd512", "jpeg2048", "png512"} & set(names):
        path = _find_sd_image(sd_image, tmp)
        if path.is_relative_to(tmp):
            source = f"{SD_ARCHIVE.name}:{path.relative_to(tmp / 'sd-vs-coco-200')}"
        elif path.is_relative_to(PROJECT_ROOT):
            source = str(path.relative_to(PROJECT_ROOT))
        else:
            source = str(path)
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
        inputs["sd512"] = BenchInput("sd512", path.name, "image/jpeg", data, *rgb.size, source=source)
        big = rgb.resize((2048, 1536), Image.LANCZOS)
        buffer = io.BytesIO()
        big.save(buffer, "JPEG", quality=big_quality)
        inputs["jpeg2048"] = BenchInput("jpeg2048", "large.jpg", "image/jpeg", buffer.getvalue(), 2048, 1536,
                                        source=f"{source} resized (Lanczos) to 2048x1536",
                                        notes={"jpeg_quality": big_quality})
        buffer = io.BytesIO()
        rgb.save(buffer, "PNG")
        inputs["png512"] = BenchInput("png512", "image.png", "image/png", buffer.getvalue(), *rgb.size,
                                      source=f"{source} saved as PNG")
    return [inputs[name] for name in names]


# --- the server --------------------------------------------------------------------------------------------------

def free_port() -> int:
    """A free TCP port on 127.0.0.1 (free now; the server binds it a moment later)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProductionServer:
    """The production server (`python -m backend.serve`) in its own session on 127.0.0.1:<free port>; always
    stop() it."""

    def __init__(self, overrides: dict[str, str], weights_dir: str | None, launcher: str = "serve") -> None:
        self.port = free_port()
        self.env = {**os.environ, "DETECTOR_BIND": f"127.0.0.1:{self.port}", **overrides}
        if weights_dir:
            self.env["DETECTOR_WEIGHTS_DIR"] = str(Path(weights_dir).resolve())
        self.overrides = overrides
        self.command = [sys.executable, "-m", "backend.serve"]
        self.config = self._effective_settings()
        self.launcher = launcher
        if launcher == "make":  # the README's `make run`, on the same port (its --bind overrides DETECTOR_BIND)
            self.command = ["make", "--no-print-directory", "run", "HOST=127.0.0.1", f"PORT={self.port}",
                            f"PY={sys.executable}"]
        self.log_file = tempfile.TemporaryFile()
        self.process: subprocess.Popen | None = None
        self.seen_workers: set[int] = set()

    def _effective_settings(self) -> dict:
        """What the server will run with under this environment, as the server itself resolves it."""
        done = subprocess.run([*self.command, "--print-settings"], cwd=PROJECT_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"the server refused its settings: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout)

    def start(self) -> None:
        log.info("starting %s on port %d", " ".join(self.command), self.port)
        # A session of its own: Ctrl-C in the terminal reaches us, and we stop the server in order.
        self.process = subprocess.Popen(self.command, cwd=PROJECT_ROOT, env=self.env, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, limit: int = 3000) -> str:
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")[-limit:]

    def _ready_once(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/api/ready", headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            return response.status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float) -> float:
        """Wait for all workers and for /api/ready to answer 200 many times in a row; returns the seconds taken."""
        started = time.monotonic()
        expected = int(self.config.get("workers") or 1)
        streak_needed = 4 * expected  # fresh connections land on whichever worker accepts first
        streak = 0
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}:\n{self.log_tail()}")
            if len(self.worker_pids()) >= expected and self._ready_once():
                streak += 1
                if streak >= streak_needed:
                    return time.monotonic() - started
                continue
            streak = 0
            time.sleep(0.2)
        raise TimeoutError(f"the server was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        master = self.process.pid if self.process else None
        if master and self.launcher == "make":  # make -> the server's master -> its workers
            master = next(iter(child_pids(master)), None)
        pids = child_pids(master) if master else []
        self.seen_workers.update(pids)
        return pids

    def memory(self) -> dict:
        """VmRSS and VmHWM (MiB) of the master and each worker, and their sums."""
        master = proc_status(self.process.pid)
        workers = {pid: proc_status(pid) for pid in self.worker_pids()}
        workers = {pid: status for pid, status in workers.items() if status}
        rss_workers = sum(s.get("VmRSS", 0) for s in workers.values())
        hwm_workers = sum(s.get("VmHWM", 0) for s in workers.values())
        return {"workers": len(workers),
                "master_rss_mib": kib_to_mib(master.get("VmRSS")), "master_hwm_mib": kib_to_mib(master.get("VmHWM")),
                "worker_rss_mib": [kib_to_mib(s.get("VmRSS")) for s in workers.values()],
                "worker_hwm_mib": [kib_to_mib(s.get("VmHWM")) for s in workers.values()],
                "worker_threads": [s.get("Threads") for s in workers.values()],
                "workers_rss_mib": kib_to_mib(rss_workers),
                "total_rss_mib": kib_to_mib(rss_workers + master.get("VmRSS", 0)),
                "total_hwm_mib": kib_to_mib(hwm_workers + master.get("VmHWM", 0))}

    def rss_sum_kib(self) -> int:
        return sum(proc_status(pid).get("VmRSS", 0) for pid in [self.process.pid, *self.worker_pids()])

    def cpu_by_pid(self) -> dict[int, float]:
        pids = [self.process.pid, *self.worker_pids()]
        return {pid: seconds for pid in pids if (seconds := cpu_seconds(pid)) is not None}

    def stop(self) -> float | None:
        """SIGTERM (graceful), then SIGKILL to the server's own process group, then any worker left behind;
        returns the seconds the graceful stop took."""
        if not self.process:
            return None
        started = time.monotonic()
        if self.process.poll() is None:
            self.worker_pids()
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except (subprocess.TimeoutExpired, KeyboardInterrupt) as reason:
                log.warning("the server did not stop gracefully (%s); killing its process group",
                            "a second interrupt" if isinstance(reason, KeyboardInterrupt) else "30 s")
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)
        stopped_after = time.monotonic() - started
        for pid in self.seen_workers:  # workers are in the master's group; this only catches orphans
            try:
                if proc_status(pid) and os.getpgid(pid) == self.process.pid:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log_file.close()
        self.process = None
        return stopped_after


# --- clients -----------------------------------------------------------------------------------------------------

@dataclass
class ClientJob:
    """What one client process sends, and how long it may keep trying during warm-up."""
    port: int
    path: str
    body: bytes
    headers: dict
    warmup: int
    warmup_timeout: float
    request_timeout: float
    boundary: str = ""  # the multipart boundary in `body`, replaced by a fresh one on every request


def _send(conn: http.client.HTTPConnection, job: ClientJob) -> tuple[int, int]:
    body, headers = job.body, job.headers
    if job.boundary:
        # A new multipart boundary on every request, as real HTTP clients do: werkzeug compiles its parser's
        # regular expressions per boundary, which a repeated body would let it cache (0.3 ms a request here).
        fresh = f"bench-{uuid.uuid4().hex}"
        body = body.replace(job.boundary.encode(), fresh.encode())
        headers = {**headers, "Content-Type": headers["Content-Type"].replace(job.boundary, fresh)}
    conn.request("POST", job.path, body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    return response.status, len(payload)


def client_main(index: int, job: ClientJob, tickets, limit: int, deadline, go, messages) -> None:
    """One client process: warm up, wait for the start, then send until the tickets or the time run out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    conn = http.client.HTTPConnection("127.0.0.1", job.port, timeout=job.request_timeout)
    warm_ok, warm_errors = 0, Counter()
    give_up = time.monotonic() + job.warmup_timeout
    while warm_ok < job.warmup:
        if time.monotonic() > give_up:
            messages.put(("failed", index, f"warm-up got no {job.warmup} answers of 200 within "
                                           f"{job.warmup_timeout:.0f} s: {dict(warm_errors)}"))
            return
        try:
            status, _ = _send(conn, job)
        except (OSError, http.client.HTTPException) as error:
            warm_errors[type(error).__name__] += 1
            conn.close()
            time.sleep(0.2)
            continue
        if status == 200:
            warm_ok += 1
        else:
            warm_errors[status] += 1
            if status == 503:  # a worker still loading its models
                time.sleep(0.2)
    last_used = time.monotonic()
    messages.put(("ready", index, dict(warm_errors)))
    go.wait()
    stop_at = deadline.value
    latencies: list[float] = []
    errors: Counter = Counter()
    response_bytes = 0
    reconnects = 0
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    while time.monotonic() < stop_at:
        with tickets.get_lock():
            if tickets.value >= limit:
                break
            tickets.value += 1
        if time.monotonic() - last_used > IDLE_RECONNECT_S:
            conn.close()  # reconnects on the next request, outside the timed section
            conn.connect()
            reconnects += 1
        started = time.perf_counter()
        try:
            status, size = _send(conn, job)
        except (OSError, http.client.HTTPException) as error:
            errors[type(error).__name__] += 1
            conn.close()
            last_used = 0.0
            continue
        elapsed = time.perf_counter() - started
        last_used = time.monotonic()
        if status == 200:
            latencies.append(elapsed)
            response_bytes += size
        else:
            errors[str(status)] += 1
    finished = time.monotonic()
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    conn.close()
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    messages.put(("done", index, {"latencies": latencies, "errors": dict(errors), "finished": finished, "cpu_s": cpu,
                                  "response_bytes": response_bytes, "reconnects": reconnects}))


_live_clients: list[mp.Process] = []


def _stop_clients() -> None:
    for process in _live_clients:
        if process.is_alive():
            process.terminate()
    for process in _live_clients:
        process.join(timeout=5)
    _live_clients.clear()


def _client_job(server: ProductionServer, spec: BenchInput, gradcam: bool, args: argparse.Namespace) -> ClientJob:
    """What every client of a cell sends: the multipart body of `spec`, to the route of the Grad-CAM mode."""
    boundary = f"bench-{uuid.uuid4().hex}"
    body, content_type = build_multipart("image", spec.filename, spec.content_type, spec.data, boundary)
    return ClientJob(port=server.port, path="/api/predict" if gradcam else "/api/predict?explain=false", body=body,
                     headers={"Content-Type": content_type, "Content-Length": str(len(body)),
                              "Accept": "application/json"},
                     warmup=args.warmup, warmup_timeout=args.ready_timeout, request_timeout=args.request_timeout,
                     boundary="" if args.same_boundary else boundary)


def _await_warmup(messages, clients: int, timeout: float) -> Counter:
    """Every client's word that it is warm; the errors their warm-ups met."""
    warmup_errors = Counter()
    for _ in range(clients):
        kind, index, payload = _next_message(messages, timeout)
        if kind == "failed":
            raise RuntimeError(f"client {index}: {payload}")
        warmup_errors.update(payload)
    return warmup_errors


def _watch_cell(server: ProductionServer, messages, tickets, clients: int, started: float, seconds: float,
                args: argparse.Namespace, sample_every: float) -> tuple[list[dict], int, list[dict]]:
    """Until every client is done: their results, the server's sampled peak RSS (KiB) and the RSS timeline."""
    results, peak_rss_kib = [], 0
    timeline = []
    while len(results) < clients:
        try:
            kind, index, payload = messages.get(timeout=sample_every)
            if kind == "done":
                results.append(payload)
            continue
        except queue.Empty:
            pass
        rss = server.rss_sum_kib()
        peak_rss_kib = max(peak_rss_kib, rss)
        if args.timeline:
            timeline.append({"t_s": round(time.monotonic() - started, 2), "sent": tickets.value,
                             "rss_mib": kib_to_mib(rss)})
        if time.monotonic() > started + seconds + args.request_timeout + 30:
            raise RuntimeError("clients did not finish in time")
        if not any(p.is_alive() for p in _live_clients) and messages.empty():
            raise RuntimeError("a client process died")
    return results, peak_rss_kib, timeline


def run_cell(server: ProductionServer, spec: BenchInput, clients: int, gradcam: bool, requests: int, seconds: float,
             args: argparse.Namespace, sample_every: float = 0.25) -> dict:
    """One measured cell; returns its figures (latency in ms, throughput, errors, server CPU and memory)."""
    ctx = mp.get_context("fork")  # the parent imports nothing heavy, and the body is shared without a copy
    job = _client_job(server, spec, gradcam, args)
    tickets = ctx.Value("q", 0)
    deadline = ctx.Value("d", float("inf"))
    go = ctx.Event()
    messages = ctx.Queue()
    for index in range(clients):
        process = ctx.Process(target=client_main, args=(index, job, tickets, requests, deadline, go, messages),
                              daemon=True)
        process.start()
        _live_clients.append(process)
    try:
        warmup_errors = _await_warmup(messages, clients, args.ready_timeout + 30)
        cpu_before = server.cpu_by_pid()
        started = time.monotonic()
        deadline.value = started + seconds
        go.set()
        results, peak_rss_kib, timeline = _watch_cell(server, messages, tickets, clients, started, seconds, args,
                                                      sample_every)
        cpu_after = server.cpu_by_pid()
    finally:
        _stop_clients()
    cell = {"input": spec.name, "clients": clients, "gradcam": gradcam, "requests_limit": requests,
            "seconds_limit": seconds}
    return {**cell, **_cell_figures(server, results, started, cpu_before, cpu_after, peak_rss_kib, warmup_errors),
            **({"timeline": timeline} if args.timeline else {}),
            **({"latencies_ms": [round(v * 1000, 3) for v in _latencies(results)]} if args.raw_latencies else {})}


def _latencies(results: list[dict]) -> list[float]:
    return [value for r in results for value in r["latencies"]]


def _cell_figures(server: ProductionServer, results: list[dict], started: float, cpu_before: dict[int, float],
                  cpu_after: dict[int, float], peak_rss_kib: int, warmup_errors: Counter) -> dict:
    """The clients' results and the server's CPU and memory summed into a cell's figures."""
    wall = max(r["finished"] for r in results) - started
    latencies = _latencies(results)
    errors = Counter()
    for r in results:
        errors.update(r["errors"])
    ok = len(latencies)
    server_cpu = sum(cpu_after.get(pid, 0.0) - cpu_before.get(pid, 0.0) for pid in cpu_after)
    per_worker_cpu = [round(cpu_after[pid] - cpu_before.get(pid, 0.0), 2) for pid in cpu_after
                      if pid != server.process.pid]
    memory = server.memory()
    peak_rss_kib = max(peak_rss_kib, server.rss_sum_kib())
    return {"ok": ok, "errors": sum(errors.values()), "error_kinds": dict(errors),
            "warmup_errors": dict(warmup_errors), "wall_s": round(wall, 3),
            "throughput_rps": round(ok / wall, 3) if wall > 0 else None,
            "latency_ms": latency_summary_ms(latencies),
            "server_cpu_s": round(server_cpu, 3),
            "server_cpu_ms_per_request": round(server_cpu * 1000 / ok, 3) if ok else None,
            "server_cpu_s_per_worker": per_worker_cpu,
            "client_cpu_s": round(sum(r["cpu_s"] for r in results), 3),
            "mean_response_bytes": round(sum(r["response_bytes"] for r in results) / ok) if ok else None,
            "reconnects": sum(r["reconnects"] for r in results),
            "memory_after": memory, "sampled_peak_rss_sum_mib": kib_to_mib(peak_rss_kib)}


def _next_message(messages, timeout: float):
    try:
        return messages.get(timeout=timeout)
    except queue.Empty:
        raise RuntimeError(f"no word from the clients within {timeout:.0f} s") from None


def run_soak(server: ProductionServer, spec: BenchInput, total: int, args: argparse.Namespace) -> dict:
    """`total` requests of `spec` without Grad-CAM from 4 clients; workers' RSS after the first 100 and after all."""
    first = min(SOAK_FIRST, total)
    log.info("soak: %d requests (first %d, then %d)", total, first, total - first)
    phase1 = run_cell(server, spec, 4, False, first, args.soak_seconds, args)
    after_first = server.memory()
    phase2 = run_cell(server, spec, 4, False, total - first, args.soak_seconds, args) if total > first else None
    after_all = server.memory()
    ratio = (after_all["workers_rss_mib"] / after_first["workers_rss_mib"]
             if after_first["workers_rss_mib"] else None)
    done = phase1["ok"] + (phase2["ok"] if phase2 else 0)
    return {"input": spec.name, "clients": 4, "gradcam": False, "requests": total, "ok": done,
            "errors": phase1["errors"] + (phase2["errors"] if phase2 else 0),
            "workers_rss_after_first_mib": after_first["workers_rss_mib"],
            "workers_rss_after_all_mib": after_all["workers_rss_mib"],
            "rss_ratio": round(ratio, 4) if ratio else None,
            "memory_after_first": after_first, "memory_after_all": after_all,
            "phase_first": phase1, "phase_rest": phase2}


# --- report ------------------------------------------------------------------------------------------------------

def cells_table(cells: list[dict]) -> str:
    """The main table: one row per cell."""
    rows = []
    for c in cells:
        lat = c.get("latency_ms") or {}
        rows.append([c["input"], c["clients"], "on" if c["gradcam"] else "off", fmt(lat.get("p50")),
                     fmt(lat.get("p90")), fmt(lat.get("p99")), fmt(c.get("throughput_rps")),
                     c.get("errors", "failed") if "failure" not in c else f"failed: {c['failure'][:60]}",
                     c.get("ok"), fmt(c.get("server_cpu_ms_per_request")),
                     " / ".join(fmt(x) for x in c.get("server_cpu_s_per_worker") or []),
                     fmt((c.get("memory_after") or {}).get("total_rss_mib"), 0)])
    return markdown_table(["input", "clients", "Grad-CAM", "p50 ms", "p90 ms", "p99 ms", "req/s", "errors",
                           "requests", "server CPU ms/req", "CPU s per worker", "server RSS MiB"], rows)


def inputs_table(inputs: list[BenchInput]) -> str:
    """What was sent."""
    return markdown_table(["input", "type", "size", "bytes", "source"],
                          [[i.name, i.content_type, f"{i.width}x{i.height}", f"{len(i.data):,}", i.source]
                           for i in inputs])


def _csv(value: str, allowed: tuple | None = None, kind=str) -> list:
    items = [kind(item.strip()) for item in value.split(",") if item.strip()]
    if allowed:
        unknown = [item for item in items if item not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(map(str, unknown))}; choose from "
                                             f"{', '.join(allowed)}")
    return items


def get_args_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=lambda v: _csv(v, INPUT_NAMES), default=list(INPUT_NAMES),
                        help=f"comma-separated subset of {','.join(INPUT_NAMES)}")
    parser.add_argument("--clients", type=lambda v: _csv(v, kind=int), default=[1, 4],
                        help="comma-separated client counts (default 1,4)")
    parser.add_argument("--modes", type=lambda v: _csv(v, MODES), default=list(MODES),
                        help="comma-separated subset of gradcam,no-gradcam")
    # A cell of 400 requests lasted about a second at full load, too short to average out this shared machine's
    # noise; 3,000 requests or 10 s per cell keeps the whole run to a few minutes.
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per cell, all clients (3000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell at most (10)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up requests per client before each cell (3)")
    parser.add_argument("--soak", type=int, default=10000,
                        help="soak requests (cifake32, no Grad-CAM, 4 clients); 0 skips it (10000)")
    parser.add_argument("--soak-seconds", type=float, default=1800.0, help="time limit of the soak (1800)")
    parser.add_argument("--workers", type=int, help="DETECTOR_WORKERS (default: the server's)")
    parser.add_argument("--threads", type=int, help="DETECTOR_THREADS (default: the server's)")
    parser.add_argument("--torch-threads", type=int, help="DETECTOR_TORCH_THREADS (default: the server's)")
    parser.add_argument("--weights-dir", default=str(PROJECT_ROOT / "saved_models"))
    parser.add_argument("--launcher", choices=("serve", "make"), default="serve",
                        help="start the server with `python -m backend.serve` (default) or with `make run`")
    parser.add_argument("--sd-image", help="the 512x512 JPEG to use (default: from sd-vs-coco-200)")
    parser.add_argument("--large-quality", type=int, default=90, help="JPEG quality of the 2048x1536 input (90)")
    parser.add_argument("--save-inputs", help="also write the inputs sent to this folder")
    parser.add_argument("--ready-timeout", type=float, default=600.0,
                        help="seconds to wait for the server, and for each cell's warm-up (600)")
    parser.add_argument("--request-timeout", type=float, default=120.0)
    parser.add_argument("--timeline", action="store_true", help="keep RSS samples over time in the JSON")
    parser.add_argument("--raw-latencies", action="store_true", help="keep every request's latency in the JSON")
    parser.add_argument("--same-boundary", action="store_true",
                        help="send one multipart boundary throughout instead of a fresh one per request (werkzeug "
                             "then reuses its compiled parser; real clients do not)")
    parser.add_argument("--output", default=str(PROJECT_ROOT / "bench" / "results" / "load.json"))
    return parser


def _interrupt(signum, frame) -> None:
    """SIGTERM takes the same way out as Ctrl-C, through the finally blocks that stop the server."""
    raise KeyboardInterrupt


def save_inputs(inputs: list[BenchInput], folder: Path) -> None:
    """--save-inputs: the images sent, one file each, named after the input."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in inputs:
        (folder / f"{i.name}{Path(i.filename).suffix}").write_bytes(i.data)


def run_cells(server: ProductionServer, by_name: dict[str, BenchInput], args: argparse.Namespace,
              cells: list[dict]) -> None:
    """Every selected cell in turn, appended to `cells` as it ends (so an interrupted run keeps what it measured);
    a cell that fails is recorded with its failure and the run goes on."""
    for name in args.inputs:
        for clients in args.clients:
            for mode in args.modes:
                spec, gradcam = by_name[name], mode == "gradcam"
                log.info("cell: %s, %d client(s), Grad-CAM %s", name, clients, "on" if gradcam else "off")
                try:
                    cell = run_cell(server, spec, clients, gradcam, args.requests, args.seconds, args)
                except RuntimeError as error:
                    log.error("cell failed: %s", error)
                    cell = {"input": name, "clients": clients, "gradcam": gradcam, "failure": str(error)}
                cells.append(cell)
                if "failure" not in cell:
                    lat = cell["latency_ms"]
                    log.info("  %d ok, %d errors, p50 %s ms, p99 %s ms, %.1f req/s", cell["ok"],
                             cell["errors"], lat["p50"], lat["p99"], cell["throughput_rps"] or 0)


def main(argv: list[str] | None = None) -> int:
    """Run the selected cells and the soak against a fresh production server; print tables, write JSON."""
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if any(c < 1 for c in args.clients) or args.requests < 1 or args.seconds <= 0:
        raise SystemExit("error: --clients, --requests and --seconds must be positive")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started as a background job

    started_at = utc_now()
    needed = list(dict.fromkeys(args.inputs + (["cifake32"] if args.soak else [])))
    overrides = {variable: str(value) for variable, value in (("DETECTOR_WORKERS", args.workers),
                                                              ("DETECTOR_THREADS", args.threads),
                                                              ("DETECTOR_TORCH_THREADS", args.torch_threads))
                 if value is not None}
    document: dict = {"benchmark": "load_test", "started_at": started_at, "machine": machine_info(),
                      "git": git_info(), "settings": {k: v for k, v in vars(args).items()}}
    cells: list[dict] = []
    server = None
    with tempfile.TemporaryDirectory(prefix="bench-inputs-") as tmp:
        inputs = prepare_inputs(needed, args.sd_image, Path(tmp), args.large_quality)
        by_name = {i.name: i for i in inputs}
        if args.save_inputs:
            save_inputs(inputs, Path(args.save_inputs))
        document["inputs"] = [i.describe() for i in inputs]
        try:
            server = ProductionServer(overrides, args.weights_dir, args.launcher)
            server.start()
            startup_s = server.wait_ready(args.ready_timeout)
            log.info("ready after %.1f s with %d workers", startup_s, len(server.worker_pids()))
            document["server"] = {"command": server.command, "env_overrides": overrides,
                                  "weights_dir": server.env.get("DETECTOR_WEIGHTS_DIR"), "config": server.config,
                                  "startup_s": round(startup_s, 2), "memory_at_ready": server.memory()}
            run_cells(server, by_name, args, cells)
            document["cells"] = cells
            document["memory_after_cells"] = server.memory()
            if args.soak:
                document["soak"] = run_soak(server, by_name["cifake32"], args.soak, args)
            document["memory_final"] = server.memory()
        except KeyboardInterrupt:
            log.warning("interrupted; stopping the server")
            document["interrupted"] = True
            document["cells"] = cells
        finally:
            _stop_clients()
            if server:
                log.info("stopping the server")
                shutdown_s = server.stop()
                if "server" in document and shutdown_s is not None:
                    document["server"]["shutdown_s"] = round(shutdown_s, 2)
    document["finished_at"] = utc_now()
    write_json(Path(args.output), document)
    log.info("wrote %s", args.output)
    sys.stderr.flush()
    print(report(document, inputs), flush=True)
    failed = document.get("interrupted") or any("failure" in c for c in cells)
    return 1 if failed else 0


def report(document: dict, inputs: list[BenchInput]) -> str:
    """The Markdown printed on stdout."""
    machine, server = document["machine"], document.get("server", {})
    config = server.get("config", {})
    lines = [f"## Load test ({document['started_at']})", "",
             f"machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
             f"({machine['usable_cores']} usable), {machine['mem_total_mib']} MiB, load average at start "
             f"{' '.join(machine['loadavg_at_start'] or [])}",
             f"commit: {document['git']['commit']}{' (with uncommitted changes)' if document['git']['dirty'] else ''}",
             f"server: {config.get('server')} ({config.get('interface')}), workers {config.get('workers')}, threads "
             f"{config.get('threads')}, torch threads {config.get('torch_threads')}, overrides "
             f"{server.get('env_overrides') or 'none'}; ready after {server.get('startup_s')} s, graceful stop took "
             f"{server.get('shutdown_s')} s", "",
             inputs_table(inputs), "", cells_table(document.get("cells", [])), ""]
    memory = server.get("memory_at_ready")
    if memory:
        lines.append(f"server memory at ready: RSS {memory['total_rss_mib']} MiB (workers "
                     f"{memory['worker_rss_mib']}, master {memory['master_rss_mib']})")
    final = document.get("memory_final") or document.get("memory_after_cells")
    if final:
        lines.append(f"server memory at the end: RSS {final['total_rss_mib']} MiB, peak (sum of VmHWM over master "
                     f"and workers) {final['total_hwm_mib']} MiB; per worker peak {final['worker_hwm_mib']} MiB")
    soak = document.get("soak")
    if soak:
        lines += ["", markdown_table(
            ["soak requests", "ok", "errors", "workers RSS after 100 MiB", "after all MiB", "ratio", "req/s (rest)"],
            [[soak["requests"], soak["ok"], soak["errors"], soak["workers_rss_after_first_mib"],
              soak["workers_rss_after_all_mib"], fmt(soak["rss_ratio"], 3),
              fmt((soak["phase_rest"] or soak["phase_first"])["throughput_rps"])]])]
    if document.get("interrupted"):
        lines += ["", "**interrupted**: partial results"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
