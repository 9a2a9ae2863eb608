"""The real server on loopback: concurrent requests give exactly the sequential answers; memory stays flat."""
from __future__ import annotations

import random
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import images
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_weights_dir):
    live = LiveServer(tiny_weights_dir, {"DETECTOR_MAX_UPLOAD_BYTES": "5000000"})
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def _without_timing(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "timing_ms"}


def _uploads(cifake_test_sample) -> list[tuple[bytes, str]]:
    files = sorted((cifake_test_sample / "FAKE").glob("*.jpg"))[:6] + sorted((cifake_test_sample / "REAL").glob(
        "*.jpg"))[:6]
    uploads = [(f.read_bytes(), "image/jpeg") for f in files]
    return uploads + [(images.png(300, 200), "image/png"), (images.jpeg(640, 480), "image/jpeg")]


def test_concurrent_results_equal_sequential_results_heatmaps_included(server, cifake_test_sample):
    uploads = _uploads(cifake_test_sample)
    sequential = []
    for data, kind in uploads:
        status, body = server.request("POST", "/api/predict", data, kind)
        assert status == 200
        sequential.append(_without_timing(body))

    order = [i for i in range(len(uploads)) for _ in range(8)]
    random.Random(0).shuffle(order)

    def call(index: int):
        data, kind = uploads[index]
        return index, server.request("POST", "/api/predict", data, kind)

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(call, order))
    for index, (status, body) in outcomes:
        assert status == 200
        assert _without_timing(body) == sequential[index], f"upload {index} differed under concurrency"


def test_errors_under_concurrency_stay_clean(server):
    bad = [(b"", "image/jpeg", 400), (images.TEXT, "image/png", 415), (images.png_bomb_header(), "image/png", 413),
           (images.truncated(images.jpeg(200, 200)), "image/jpeg", 400)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda item: (item[2], server.request("POST", "/api/predict", item[0], item[1])),
                                 bad * 5))
    for expected, (status, body) in outcomes:
        assert status == expected and set(body["error"]) == {"code", "message"}
    assert server.request("GET", "/api/health") == (200, {"status": "ok"})


def test_memory_stays_flat_over_thousands_of_requests(server, cifake_test_sample):
    uploads = _uploads(cifake_test_sample)[:4]

    def hammer(count: int) -> None:
        def call(i: int):
            data, kind = uploads[i % len(uploads)]
            explain = "true" if i % 2 else "false"
            status, _ = server.request("POST", f"/api/predict?explain={explain}", data, kind)
            assert status == 200

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(call, range(count)))

    hammer(200)
    baseline = server.rss_kib()
    hammer(2000)
    after = server.rss_kib()
    assert after <= baseline * 1.10, f"RSS grew from {baseline} KiB to {after} KiB over 2000 requests"


def test_production_server_serves_the_same_answers(server, tiny_weights_dir, cifake_test_sample):
    production = LiveServer(tiny_weights_dir, {"DETECTOR_WORKERS": "2", "DETECTOR_THREADS": "2"}, production=True)
    try:
        production.wait_ready()
        for data, kind in _uploads(cifake_test_sample)[:3]:
            status, body = production.request("POST", "/api/predict", data, kind)
            assert status == 200
            assert _without_timing(body) == _without_timing(server.request("POST", "/api/predict", data, kind)[1])
        assert production.request("GET", "/api/nope")[0] == 404
        # An announced body over the limit is refused from its headers, before any of it is read or buffered.
        with socket.create_connection(("127.0.0.1", production.port), timeout=10) as sock:
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\n"
                         b"Content-Length: 1000000000\r\n\r\n")
            head = sock.recv(65536).decode("latin-1")
        assert head.startswith("HTTP/1.1 413") and '"image_too_large"' in head
    finally:
        production.stop()
    assert production.process.returncode == 0, "SIGTERM stops the production server gracefully"
