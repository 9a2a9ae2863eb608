"""The page's first-visit weight and its Lighthouse scores, against the production server (`make run`'s command)
with the shipped weights: `.venv/bin/python bench/page_weight.py` (writes bench/results/page-weight.json).

Weight: what a browser that accepts gzip downloads on a first visit, the document and every asset it names or
imports (response headers as sent, plus bodies), the samples not included (they load on a click).
Lighthouse: npm `lighthouse` (pinned 12.2.3, the newest that runs on Node 20; installed once into
~/.cache/page-weight-lighthouse) on Debian's chromium, mobile and desktop presets, accessibility, best practices and
performance. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE_VERSION = "12.2.3"
LIGHTHOUSE_HOME = Path.home() / ".cache" / "page-weight-lighthouse"
CHROMIUM = "/usr/bin/chromium"
# What a module imports besides other modules (import attributes), relative to the module.
STARTUP_FETCHES = {"samples.js": ["../samples/samples.json"]}
CATEGORIES = ("accessibility", "best-practices", "performance")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(base: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes, int]:
    """Status, headers, body and the bytes on the wire (status line + headers + body) of one GET."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    head = len(f"HTTP/1.1 {response.status} {response.reason}\r\n") + sum(
        len(f"{name}: {value}\r\n") for name, value in response.getheaders()) + 2
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body, head + len(body)


def first_visit(base: str) -> dict:
    """Every file a first visit fetches (document, stylesheet, modules and what they fetch at start-up)."""
    import gzip

    accept = {"Accept-Encoding": "gzip, deflate, br"}
    files, queue, seen = [], ["/"], set()
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        status, headers, body, wire = get(base, path, accept)
        text = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
        files.append({"path": path, "status": status, "wire_bytes": wire, "body_bytes": len(body),
                      "decoded_bytes": len(text), "encoding": headers.get("content-encoding", "identity"),
                      "cache_control": headers.get("cache-control")})
        source = text.decode("utf-8", "replace")
        url = urljoin(base + path, ".")
        if path == "/":
            found = re.findall(r"""(?:src|href)=["'](assets/[^"']+)""", source)
        elif path.endswith(".js"):
            found = re.findall(r"""^import .* from ["'](\.[^"']+)["'];""", source, re.MULTILINE)
            found += STARTUP_FETCHES.get(path.rsplit("/", 1)[-1], [])
        else:
            found = []
        for reference in found:
            queue.append(urlsplit(urljoin(url, reference)).path)
    return {"files": files, "requests": len(files), "wire_bytes": sum(f["wire_bytes"] for f in files),
            "decoded_bytes": sum(f["decoded_bytes"] for f in files)}


def lighthouse_binary() -> Path:
    binary = LIGHTHOUSE_HOME / "node_modules" / ".bin" / "lighthouse"
    if not binary.exists():
        LIGHTHOUSE_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(LIGHTHOUSE_HOME), "--no-audit", "--no-fund", "-E",
                        f"lighthouse@{LIGHTHOUSE_VERSION}"], check=True)
    return binary


def lighthouse(base: str, preset: str) -> dict:
    """One Lighthouse run: category scores, the byte weight it saw, and every audit that did not pass."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        command = [str(lighthouse_binary()), base + "/", "--quiet", "--output=json", f"--output-path={report}",
                   f"--only-categories={','.join(CATEGORIES)}",
                   "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"]
        if preset == "desktop":
            command.append("--preset=desktop")
        subprocess.run(command, check=True, env={**os.environ, "CHROME_PATH": CHROMIUM})
        data = json.loads(report.read_text())
    audits = data["audits"]
    failed = sorted((audit_id, audit["title"], audit["score"]) for audit_id, audit in audits.items()
                    if audit.get("score") is not None and audit["score"] < 1
                    and audit.get("scoreDisplayMode") in ("binary", "numeric", "metricSavings"))
    return {"preset": preset, "lighthouse": data["lighthouseVersion"],
            "scores": {name: round(data["categories"][name]["score"] * 100) for name in CATEGORIES},
            "total_byte_weight": audits["total-byte-weight"]["numericValue"],
            "requests": len(audits["network-requests"]["details"]["items"]),
            "not_passed": [{"id": i, "title": t, "score": s} for i, t, s in failed]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="an already running server (default: start the production server)")
    parser.add_argument("--no-lighthouse", action="store_true", help="measure the weight only")
    parser.add_argument("--output", default=str(PROJECT_ROOT / "bench" / "results" / "page-weight.json"))
    args = parser.parse_args()
    server = None
    base = args.base
    if base is None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "backend.serve", "--bind", f"127.0.0.1:{port}"],
                                  cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while True:
            try:
                if get(base, "/api/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("the server did not become ready")
            time.sleep(0.5)
        weight = first_visit(base)
        print(f"first visit: {weight['requests']} requests, {weight['wire_bytes']:,} bytes on the wire "
              f"({weight['decoded_bytes']:,} decoded)")
        for entry in weight["files"]:
            print(f"  {entry['wire_bytes']:>7,}  {entry['encoding']:<8} {entry['cache_control']:<38} {entry['path']}")
        runs = [] if args.no_lighthouse else [lighthouse(base, preset) for preset in ("mobile", "desktop")]
        for run in runs:
            scores = ", ".join(f"{name} {score}" for name, score in run["scores"].items())
            print(f"lighthouse {run['lighthouse']} {run['preset']}: {scores}; total byte weight "
                  f"{run['total_byte_weight']:,.0f} over {run['requests']} requests")
            for audit in run["not_passed"]:
                print(f"    not passed: {audit['id']} ({audit['score']}): {audit['title']}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    result = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.machine(),
              "cpus": os.cpu_count(), "python": platform.python_version(), "server": "python -m backend.serve",
              "base": base if args.base else "production server, shipped weights", "first_visit": weight,
              "lighthouse": runs}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
