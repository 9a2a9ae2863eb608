"""backend/intake.py's multipart reader (python-multipart) against werkzeug's parser (issue #18)

Two readers, each giving the route what it needs (every file of the field `image` as bytes, with its client file
name passed through backend.intake.safe_filename, and a bound on the number of parts):

  python-multipart
             backend/intake.py as shipped: python-multipart's callback MultipartParser over the buffered body
             (split_multipart), the part count bounded from the delimiters first, werkzeug only as a fallback for
             framing python-multipart refuses
  werkzeug   Flask's own `request.files.getlist("image")` (werkzeug's MultiPartParser), max_form_parts set to the
             same bound; this is intake.py's fallback branch taken for every request

Until the switch the first reader was a hand-written parser; docs/multipart-reader.md keeps its figures, measured
by this script's earlier three-way version (git log -- bench/multipart_reader.py).

Requests (every request gets a fresh boundary, as real clients send):
  png-32px-3k      one 32x32 PNG (~3 KB)              POST /api/predict
  jpeg-300k        one ~300 KB JPEG (1024x768)        POST /api/predict
  batch-16x3k      16 small PNGs in one body          POST /api/predict/batch
  photo-3mb        one ~3 MB JPEG photo (3000x2000)   POST /api/predict

Measured:
  parse      in-process: a Flask Request built from the environ the production front builds (backend.asgi.
             wsgi_environ), then the reader, until every file is bytes; many repetitions, the readers interleaved
  memory     tracemalloc peak of one parse of each request, and whether a file went to a temporary file
  end to end granian, one worker, behind backend/asgi.py's BufferedWSGI front, with a sequential keep-alive client
             in this process: (1) "service": the real app (backend.asgi.create_asgi_app) with the reader swapped
             in backend.intake, ?explain=false; (2) "parse-only": the same front and a Flask app whose two routes
             only read the upload and answer its size. All servers run at once and are visited in turn, round
             after round, so that load on the machine falls on every reader alike. Server CPU per request is read
             from /proc.

    .venv/bin/python -m bench.multipart_reader [--rounds 8] [--parse-reps 400] [--skip-service]

Prints figures and writes bench/results/multipart_reader.json; it never asserts.
"""
from __future__ import annotations

import argparse
import gc
import http.client
import io
import json
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
import time
import tracemalloc
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

RESULTS = PROJECT_ROOT / "bench" / "results" / "multipart_reader.json"
READERS = ("python-multipart", "werkzeug")
PREDICT, BATCH = "/api/predict", "/api/predict/batch"
READER_ENV, APP_ENV = "MPBENCH_READER", "MPBENCH_APP"


# --- the readers ---------------------------------------------------------------------------------------------------

def _werkzeug_files(request, field: str, max_files: int):
    """intake.py's fallback branch, for every body: Flask's request.files, its part count bounded alike."""
    from werkzeug.exceptions import RequestEntityTooLarge

    from backend.intake import OTHER_PARTS
    from utils.errors import BadRequest

    request.max_form_parts = max_files + OTHER_PARTS
    try:
        return [(f.read(), f.filename) for f in request.files.getlist(field)]
    except RequestEntityTooLarge:
        raise BadRequest("the multipart body has too many parts or an over-long field") from None


def use_reader(name: str) -> None:
    """Make backend.intake's read_single_upload / read_batch_uploads use this reader (all else unchanged)."""
    import backend.intake as intake

    if not hasattr(intake, "_shipped_multipart_files"):
        intake._shipped_multipart_files = intake._multipart_files
    intake._multipart_files = {"python-multipart": intake._shipped_multipart_files, "werkzeug": _werkzeug_files}[name]


def read_upload(request, path: str, settings: dict) -> list[tuple[bytes, str | None]]:
    """What the routes get from the reader, down to bytes (the batch route calls bytes() on each file)."""
    from backend.intake import read_batch_uploads, read_single_upload

    if path == BATCH:
        return [(bytes(data), name) for data, name in read_batch_uploads(request, settings["max_batch_files"])]
    return [read_single_upload(request, settings["max_upload_bytes"])]


# --- requests ------------------------------------------------------------------------------------------------------

def _images() -> dict[str, tuple[str, str, list[tuple[str, str, bytes]]]]:
    """name -> (path, description, [(filename, content type, bytes)])."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(18)

    def encode(array, fmt: str, **options) -> bytes:
        out = io.BytesIO()
        Image.fromarray(array).save(out, fmt, **options)
        return out.getvalue()

    def photo(width: int, height: int, noise: float) -> np.ndarray:
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        base = np.stack([128 + 90 * np.sin(x / 97 + c) * np.cos(y / 61 - c) for c in (0.0, 1.3, 2.6)], axis=-1)
        return np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)

    def thumb() -> bytes:
        return encode(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "PNG")

    return {
        "png-32px-3k": (PREDICT, "one 32x32 PNG", [("thumb.png", "image/png", thumb())]),
        "jpeg-300k": (PREDICT, "one 1024x768 JPEG", [("photo.jpg", "image/jpeg",
                                                       encode(photo(1024, 768, 10), "JPEG", quality=92))]),
        "batch-16x3k": (BATCH, "16 32x32 PNGs", [(f"thumb-{i:02d}.png", "image/png", thumb()) for i in range(16)]),
        "photo-3mb": (PREDICT, "one 3000x2000 JPEG", [("IMG_0001.jpg", "image/jpeg",
                                                        encode(photo(3000, 2000, 10), "JPEG", quality=95))]),
    }


def multipart_body(files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body as curl and browsers send it, with a fresh boundary."""
    boundary = "------------------------" + secrets.token_hex(12)
    chunks = []
    for filename, content_type, data in files:
        chunks.append((f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\""
                       f"\r\nContent-Type: {content_type}\r\n\r\n").encode())
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def q(p: float) -> float:
        rank = (len(ordered) - 1) * p
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    return {"n": len(ordered), "median": round(q(0.5), 2), "p90": round(q(0.9), 2), "min": round(ordered[0], 2)}


# --- in-process parse cost and memory ------------------------------------------------------------------------------

def _request_for(body: bytes, content_type: str, path: str, settings: dict):
    from flask import Request

    from backend.asgi import wsgi_environ
    from backend.settings import body_limit

    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"explain=false",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", content_type.encode()),
                         (b"content-length", str(len(body)).encode())]}
    request = Request(wsgi_environ(scope, body))
    request.max_content_length = body_limit(settings, path)
    return request


def measure_parse(images: dict, settings: dict, reps: int) -> dict:
    """Median and p90 (microseconds) of Request + reader, per reader and request; readers interleaved."""
    from flask import Flask

    app = Flask("bench")  # Flask's Request reads its form limits from the app's config when there is one
    samples = {(r, name): [] for r in READERS for name in images}
    with app.app_context():
        for rep in range(-20, reps):  # the first 20 warm up
            for name, (path, _, files) in images.items():
                body, content_type = multipart_body(files)
                order = list(READERS)
                random.shuffle(order)
                for reader in order:
                    use_reader(reader)
                    gc.collect()
                    started = time.perf_counter()
                    got = read_upload(_request_for(body, content_type, path, settings), path, settings)
                    elapsed = time.perf_counter() - started
                    if rep < 0:
                        expected = [(data, fn) for fn, _, data in files]
                        if [(bytes(d), n) for d, n in got] != expected:
                            raise RuntimeError(f"{reader} read {name} wrongly")
                    else:
                        samples[(reader, name)].append(elapsed * 1e6)
    return {name: {reader: _percentiles(samples[(reader, name)]) for reader in READERS} for name in images}


def measure_memory(images: dict, settings: dict) -> dict:
    """tracemalloc peak (bytes) of one parse, the body already in memory; and whether a file was spooled to disk."""
    from flask import Flask

    app = Flask("bench")
    out = {}
    with app.app_context():
        for name, (path, _, files) in images.items():
            out[name] = {}
            for reader in READERS:
                use_reader(reader)
                body, content_type = multipart_body(files)
                read_upload(_request_for(body, content_type, path, settings), path, settings)  # warm (imports)
                body, content_type = multipart_body(files)
                request = _request_for(body, content_type, path, settings)
                gc.collect()
                tracemalloc.start()
                got = read_upload(request, path, settings)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                spooled = False
                if reader == "werkzeug":
                    spooled = any(getattr(f.stream, "_rolled", False) for f in request.files.getlist("image"))
                out[name][reader] = {"body_bytes": len(body), "files_bytes": sum(len(d) for d, _ in got),
                                     "peak_bytes": peak, "peak_over_body": round(peak / len(body), 2),
                                     "file_on_disk": spooled}
                del got, request, body
    return out


# --- end to end under granian ----------------------------------------------------------------------------------------

def parse_only_app():
    """The production front (BufferedWSGI, the same body policy) over a Flask app that only reads the upload."""
    from flask import Flask, jsonify, request

    from backend.asgi import BodyPolicy, BufferedWSGI
    from backend.errors import register_error_handlers
    from backend.settings import BATCH_PATH, body_limit, serving_settings

    use_reader(os.environ.get(READER_ENV, READERS[0]))
    settings = serving_settings()
    app = Flask("parse_only")
    app.config["MAX_CONTENT_LENGTH"] = body_limit(settings, PREDICT)

    @app.before_request
    def batch_limit():
        if request.path == BATCH_PATH:
            request.max_content_length = body_limit(settings, BATCH_PATH)

    @app.post(PREDICT)
    @app.post(BATCH)
    def parse():
        got = read_upload(request, request.path, settings)
        return jsonify({"files": len(got), "bytes": sum(len(d) for d, _ in got),
                        "names": [n for _, n in got]})

    register_error_handlers(app)
    policy = BodyPolicy(max_upload_bytes=settings["max_upload_bytes"], max_batch_bytes=settings["max_batch_bytes"])
    return BufferedWSGI(app, threads=int(settings.get("app_threads") or 2), policy=policy)


def service_app():
    """The production app (backend.asgi.create_asgi_app), the reader swapped in backend.intake."""
    from backend.asgi import create_asgi_app

    use_reader(os.environ.get(READER_ENV, READERS[0]))
    return create_asgi_app()


def app_factory():
    return service_app() if os.environ.get(APP_ENV) == "service" else parse_only_app()


def serve(port: int) -> None:
    """Run in a child: granian as backend/serve.py builds it, one worker, this module's factory."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    Granian("bench.multipart_reader:app_factory", factory=True, interface=Interfaces.ASGI, address="127.0.0.1",
            port=port, workers=1, http=HTTPModes.http1, websockets=False, log_access=False).serve()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, app: str, reader: str) -> None:
        from backend.serve import MALLOC_ENV

        self.app, self.reader, self.port = app, reader, _free_port()
        env = {**os.environ, **MALLOC_ENV, READER_ENV: reader, APP_ENV: app, "DETECTOR_TORCH_THREADS": "1",
               "DETECTOR_THREADS": "2"}
        self.log = open(f"/tmp/mpbench-{app}-{reader}.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "bench.multipart_reader", "--serve", str(self.port)],
                                        cwd=PROJECT_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.conn: http.client.HTTPConnection | None = None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = "/api/ready" if self.app == "service" else PREDICT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app}/{self.reader} exited; see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET" if self.app == "service" else "POST", path, body=b"" if self.app != "service"
                             else None)
                status = conn.getresponse().status
                conn.close()
                if (self.app == "service" and status == 200) or (self.app != "service" and status < 500):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.app}/{self.reader} not ready in {timeout:.0f} s")

    def workers(self) -> list[int]:
        return _children(self.process.pid)

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, float]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.perf_counter()
        self.conn.request("POST", path + "?explain=false", body=body,
                          headers={"Content-Type": content_type, "Content-Length": str(len(body))})
        response = self.conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started

    def stop(self) -> None:
        if self.conn:
            self.conn.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.log.close()


def measure_end_to_end(app: str, images: dict, rounds: int, per_round: dict[str, int]) -> dict:
    servers = {reader: Server(app, reader) for reader in READERS}
    try:
        for server in servers.values():
            server.wait_ready(600)
        samples = {(r, n): [] for r in READERS for n in images}
        cpu = {(r, n): 0.0 for r in READERS for n in images}
        statuses: dict[str, int] = {}
        for round_index in range(-1, rounds):  # round -1 warms every server up
            for name, (path, _, files) in images.items():
                order = list(READERS)
                random.shuffle(order)
                for reader in order:
                    server = servers[reader]
                    pids = server.workers()
                    cpu_before = _cpu_s(pids)
                    for _ in range(per_round[name] if round_index >= 0 else 3):
                        body, content_type = multipart_body(files)
                        status, elapsed = server.post(path, body, content_type)
                        statuses[str(status)] = statuses.get(str(status), 0) + 1
                        if round_index >= 0:
                            samples[(reader, name)].append(elapsed * 1e3)
                    if round_index >= 0:
                        cpu[(reader, name)] += _cpu_s(pids) - cpu_before
        out = {"statuses": statuses}
        for name in images:
            out[name] = {}
            for reader in READERS:
                summary = _percentiles(samples[(reader, name)])
                summary["server_cpu_ms_per_request"] = round(cpu[(reader, name)] * 1e3 / summary["n"], 2)
                out[name][reader] = summary
        return out
    finally:
        for server in servers.values():
            server.stop()


# --- report --------------------------------------------------------------------------------------------------------

def machine() -> dict:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "")
    except OSError:
        pass
    versions = {}
    for package in ("flask", "werkzeug", "granian", "python-multipart"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "packages": versions,
            "git_head": commit, "loadavg_at_start": os.getloadavg()}


def print_table(title: str, data: dict, unit: str, keys: tuple[str, ...]) -> None:
    print(f"\n{title}")
    print(f"{'request':<14} " + " ".join(f"{r + ' ' + k:>26}" for r in READERS for k in keys[:1]))
    for name, by_reader in data.items():
        if not isinstance(by_reader, dict) or READERS[0] not in by_reader:
            continue
        cells = []
        for reader in READERS:
            cell = by_reader[reader]
            cells.append(f"{' / '.join(str(cell[k]) for k in keys)} {unit}".rjust(26))
        print(f"{name:<14} " + " ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parse-reps", type=int, default=400, help="in-process repetitions per reader and request")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds of the end-to-end runs")
    parser.add_argument("--skip-service", action="store_true", help="only the parse-only server end to end")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run a granian server on this port
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0

    from backend.settings import serving_settings

    settings = serving_settings()
    random.seed(18)
    images = _images()
    document = {"command": "python -m bench.multipart_reader " + " ".join(argv if argv is not None else sys.argv[1:]),
                "machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "requests": {name: {"path": path, "what": what, "files": len(files),
                                    "file_bytes": [len(d) for _, _, d in files],
                                    "body_bytes": len(multipart_body(files)[0])}
                             for name, (path, what, files) in images.items()}}
    print(json.dumps(document["machine"]))
    print(json.dumps(document["requests"]))

    document["parse_us"] = measure_parse(images, settings, args.parse_reps)
    print_table("parse, in-process (median / p90 us)", document["parse_us"], "us", ("median", "p90"))
    document["memory"] = measure_memory(images, settings)
    print("\nmemory: tracemalloc peak of one parse (bytes; x body; file on disk)")
    for name, by_reader in document["memory"].items():
        print(f"{name:<14} " + "  ".join(f"{r}: {c['peak_bytes']:,} ({c['peak_over_body']}x)"
                                         f"{' disk' if c['file_on_disk'] else ''}" for r, c in by_reader.items()))

    per_round = {"png-32px-3k": 100, "jpeg-300k": 50, "batch-16x3k": 40, "photo-3mb": 15}
    document["end_to_end_parse_only_ms"] = measure_end_to_end("parse-only", images, args.rounds, per_round)
    print_table("end to end, parse-only app under granian (median / p90 ms; server CPU ms/request)",
                document["end_to_end_parse_only_ms"], "", ("median", "p90", "server_cpu_ms_per_request"))
    if not args.skip_service:
        per_round = {"png-32px-3k": 40, "jpeg-300k": 15, "batch-16x3k": 10, "photo-3mb": 6}
        document["end_to_end_service_ms"] = measure_end_to_end("service", images, args.rounds, per_round)
        print_table("end to end, the service (?explain=false) under granian (median / p90 ms; server CPU ms/request)",
                    document["end_to_end_service_ms"], "", ("median", "p90", "server_cpu_ms_per_request"))
    document["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    document["machine"]["loadavg_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
