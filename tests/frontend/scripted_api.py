"""A stand-in for the detector service, for browser tests that need one exact answer: it serves the real page from
frontend/ and answers /api/* as the test scripts it (a chosen result, a refusal, no answer at all, a slow read), so
states the tiny random models never reach (two confident models that disagree, an animated GIF) can be tried.

The answers follow the documented contract (docs/api.md); `result()` builds one."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
         ".png": "image/png", ".svg": "image/svg+xml"}
LIMITS = {"max_upload_bytes": 20 * 1024 * 1024, "max_pixels": 64_000_000, "max_batch_files": 32,
          "formats": ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "HEIF", "AVIF"],
          "media_types": ["image/avif", "image/bmp", "image/gif", "image/heic", "image/jpeg", "image/png",
                          "image/tiff", "image/webp"]}
# A 1x1 grey JPEG: the "overlay image" of scripted results.
TINY_JPEG = ("data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwg"
             "JC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAA"
             "AAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==")


def model(name: str, p_fake: float, threshold: float = 0.5) -> dict:
    label = "FAKE" if p_fake >= threshold else "REAL"
    return {"name": name, "label": label, "p_fake": p_fake,
            "confidence": p_fake if label == "FAKE" else 1 - p_fake, "threshold": threshold}


def result(cnn: float = 0.9, efficientnet: float = 0.9, *, threshold: float = 0.5025, band: float = 0.1,
           thresholds: tuple[float, float] = (0.505, 0.5), domain_note: str | None = None, fmt: str = "PNG",
           frames: int = 1, width: int = 32, height: int = 32, heatmap: list[list[float]] | None = None,
           explained_by: str | None = None, sha256: str = "ab" * 32) -> dict:
    """A /api/predict answer: the two thumbnail models' p_fake, the ensemble rule, what the input was."""
    models = [model("cnn", cnn, thresholds[0]), model("efficientnet", efficientnet, thresholds[1])]
    p = round((cnn + efficientnet) / 2, 6)
    label = "FAKE" if p >= threshold else "REAL"
    winner = max(models, key=lambda m: m["confidence"]) if explained_by is None else next(
        m for m in models if m["name"] == explained_by)
    values = heatmap if heatmap is not None else [[0.5] * 4 for _ in range(4)]
    return {
        "verdict": {"label": label, "p_fake": p, "confidence": p if label == "FAKE" else 1 - p,
                    "uncertain": abs(p - threshold) < band, "threshold": threshold, "basis": "models"},
        "models": models,
        "explanation": {"model": winner["name"], "method": "Grad-CAM", "target": winner["label"], "layer": "x",
                        "image": TINY_JPEG, "heatmap": {"width": len(values[0]), "height": len(values),
                                                        "values": values, "tiles": None}},
        "profile": "thumbnail", "tiles": 1,
        "input": {"width": width, "height": height, "format": fmt, "frames": frames, "bytes": 1000,
                  "sha256": sha256, "filename": None},
        "domain_note": domain_note,
        "provenance": {"declared": None, "source": None, "generator": None, "c2pa": None,
                       "metadata": {"software": None, "camera": None, "generator_parameters": None}},
        "timing_ms": {"decode": 0.1, "inference": 1.0, "provenance": 0.01, "explanation": 1.0, "total": 2.5},
    }


class ScriptedApi:
    """Serve the page and scripted API answers on 127.0.0.1. Set `ready`, `answer` (a callable from the upload's
    file name to (status, body), or None to drop the connection without an answer) and `read_delay` (seconds
    per 64 KiB of a request body, to play a slow link) from the test."""

    def __init__(self) -> None:
        self.ready = True
        self.answer = lambda name: (200, result())
        self.read_delay = 0.0
        self.requests: list[str] = []
        self.aborted: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet test output
                pass

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, body: dict) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                path = self.path.split("?")[0]
                api.requests.append(f"GET {path}")
                if path == "/api/ready":
                    if api.ready:
                        self._json(200, {"status": "ready"})
                    else:
                        self._json(503, {"error": {"code": "model_unavailable", "message": "the models are loading"}})
                elif path == "/api/models":
                    self._json(200, {"models": [], "limits": LIMITS, "routing": {"thumbnail_max_side": 64},
                                     "ensemble": {"threshold": 0.5025, "thresholds": {"thumbnail": 0.5025},
                                                  "uncertain_band": 0.1}})
                else:
                    file = (FRONTEND / ("index.html" if path == "/" else path.lstrip("/"))).resolve()
                    if FRONTEND not in file.parents or not file.is_file():
                        self._json(404, {"error": {"code": "not_found", "message": "not found"}})
                        return
                    self._send(200, file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream"))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = bytearray()
                try:
                    while len(body) < length:
                        chunk = self.rfile.read(min(65536, length - len(body)))
                        if not chunk:  # the client closed the connection (an aborted upload)
                            break
                        body += chunk
                        if api.read_delay:
                            time.sleep(api.read_delay)
                except OSError:
                    pass
                name = _filename(bytes(body[:4096]))
                if len(body) < length:
                    api.aborted.append(name)
                    return
                api.requests.append(f"POST {name}")
                answer = api.answer(name)
                if answer is None:  # no answer at all: what a dead service or a dropped link looks like
                    self.close_connection = True
                    return
                status, reply = answer
                self._json(status, reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _filename(head: bytes) -> str:
    marker = b'filename="'
    start = head.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return head[start:head.find(b'"', start)].decode(errors="replace")
