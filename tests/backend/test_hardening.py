"""A hostile client against the real production server (granian, one worker, tiny models): memory and time bombs,
slow bodies, and errors that say what happened. Memory is the worker's measured peak RSS, not an estimate."""
from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import time

import pytest

from tests import hostile_images as hostile
from tests import images
from tests.live_server import PROJECT_ROOT, LiveServer

SINGLE_UPLOAD_MIB = 400  # the must-reach bounds on the rise of the worker's peak RSS
BATCH_MIB = 800
BOUNDARY = "hostile-boundary"


@pytest.fixture(scope="module")
def server(tiny_weights_dir):
    live = LiveServer(tiny_weights_dir, {"DETECTOR_WORKERS": "1", "DETECTOR_THREADS": "2",
                                         "DETECTOR_BODY_GRACE_SECONDS": "1", "DETECTOR_BODY_IDLE_SECONDS": "1"},
                      production=True)
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def post(server: LiveServer, path: str, body: bytes, content_type: str, timeout: float = 60.0):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def post_measured(server: LiveServer, path: str, body: bytes, content_type: str):
    before = server.reset_peak_rss()
    status, payload = post(server, path, body, content_type)
    return status, payload, server.peak_rss_rise_mib(before)


def post_batch(server: LiveServer, files: list[bytes], **kwargs):
    return post_measured(server, "/api/predict/batch?explain=true", hostile.batch_body(files, BOUNDARY, **kwargs),
                         f"multipart/form-data; boundary={BOUNDARY}")


def raw_exchange(server: LiveServer, head: bytes, body: bytes = b"", wait: float = 10.0) -> tuple[int, dict, bytes]:
    """Send `head` and `body` as they are, then read the answer: (status, JSON body, raw head)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    raw_head, _, payload = data.partition(b"\r\n\r\n")
    return int(raw_head.split()[1]), json.loads(payload or b"{}"), raw_head


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


# 1. A batch of tiny files that decode to 8000x8000 each held every decode at once (9.9 GB RSS, 51 s).
def test_a_batch_of_decompression_bombs_is_refused_file_by_file_without_the_memory(server):
    status, body, rise = post_batch(server, [hostile.lossless_webp(8000)] * 32)
    assert status == 200 and body["count"] == 32
    assert {entry["status"] for entry in body["results"]} == {413}
    assert "MiB" in body["results"][0]["error"]["message"]
    assert rise <= BATCH_MIB


def test_a_batch_of_the_largest_images_that_fit_stays_within_its_memory_bound(server):
    status, body, rise = post_batch(server, [hostile.png_palette_transparent(7000)] * 32)
    assert status == 200
    statuses = [entry["status"] for entry in body["results"]]
    assert statuses[0] == 200 and set(statuses) <= {200, 503}
    spent = [entry for entry in body["results"] if entry["status"] == 503]
    assert all(entry["error"]["code"] == "batch_budget_spent" for entry in spent)
    assert rise <= BATCH_MIB


# 2. Four connections trickling a body held every app thread; a short body got no answer at all.
def test_health_is_answered_while_slow_bodies_hold_connections(server):
    slow = []
    try:
        for _ in range(24):  # twelve times the worker's app threads
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         b"Content-Length: 1000000\r\n\r\n0123456789")
            slow.append(sock)
        for _ in range(5):
            started = time.monotonic()
            status, body = server.request("GET", "/api/health")
            assert status == 200 and time.monotonic() - started < 2.0
    finally:
        for sock in slow:
            sock.close()


def test_a_body_shorter_than_its_content_length_gets_a_json_408(server):
    status, body, _ = raw_exchange(server, b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                           b"Content-Length: 1000\r\n\r\n", b"0123456789")
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert "10 of 1,000 bytes" in body["error"]["message"]


# 3. Decoder CPU bombs: thousands of progressive scans, a TIFF of 100,000 pages.
def test_a_progressive_jpeg_with_thousands_of_scans_is_refused(server):
    status, body = post(server, "/api/predict", hostile.progressive_scan_bomb(5000), "image/jpeg")
    assert status == 400 and "scans" in body["error"]["message"]


def test_a_tiff_of_100000_pages_is_answered_with_a_bounded_frame_count(server):
    status, body = post(server, "/api/predict?explain=false", hostile.tiff_many_pages(100_000), "image/tiff")
    assert status == 200 and body["input"]["frames"] == 100


# 4. Single uploads of a few hundred bytes that cost 1-2 GB while decoding.
@pytest.mark.parametrize("build", [hostile.lossless_webp, hostile.png_16bit_grey, hostile.png_rgba,
                                   hostile.png_palette_transparent, hostile.tiff_float32],
                         ids=["webp", "png16", "rgba", "palette-alpha", "float-tiff"])
def test_a_small_upload_that_decodes_huge_stays_within_the_single_upload_bound(server, build):
    status, body, rise = post_measured(server, "/api/predict", build(8000), "application/octet-stream")
    assert status in (200, 413), body
    assert rise <= SINGLE_UPLOAD_MIB


def test_memory_is_given_back_after_a_large_upload(server):
    """glibc kept every worker at the peak of its largest upload (2.6 GB afterwards): serve.py sets its mmap
    threshold so large buffers go back to the system when freed."""
    post(server, "/api/predict", images.png(256, 256), "image/png")
    before = server.largest_rss_kib()
    post(server, "/api/predict", hostile.png_palette_transparent(8000), "image/png")
    assert (server.largest_rss_kib() - before) / 1024 < 100


# 5. Errors that say what happened.
def test_a_jpeg_cut_short_with_an_end_marker_gets_400_not_a_verdict(server):
    status, body = post(server, "/api/predict", hostile.jpeg_cut_with_end_marker(0.1), "image/jpeg")
    assert status == 400 and body["error"]["code"] == "invalid_image"


def test_frames_are_counted_not_read_from_the_header(server):
    status, body = post(server, "/api/predict?explain=false", hostile.apng_claiming_frames(2**31), "image/png")
    assert status == 200 and body["input"]["frames"] == 1


def test_a_batch_announced_over_the_batch_limit_gets_the_batch_limit_in_its_message(server):
    status, body, _ = raw_exchange(server, b"POST /api/predict/batch HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Type: multipart/form-data; boundary=b\r\n"
                                           b"Content-Length: 700000000\r\n\r\n")
    assert status == 413 and body["error"]["code"] == "batch_too_large"
    assert "the batch is larger than the limit of 67,174,400 bytes" in body["error"]["message"]


def test_a_batch_with_lf_only_framing_is_read(server):
    status, body, _ = post_batch(server, [images.png(32, 32), images.jpeg(32, 32)], newline=b"\n")
    assert status == 200 and [entry["status"] for entry in body["results"]] == [200, 200]


def test_a_batch_of_1001_parts_gets_the_file_limit_not_image_too_large(server):
    status, body, _ = post_batch(server, [b"x"] * 1001)
    assert status == 400 and body["error"]["code"] == "bad_request"
    assert "1,001 parts" in body["error"]["message"] and "32 files" in body["error"]["message"]


def test_no_redirect_is_built_from_the_clients_host_header(server):
    status, _, head = raw_exchange(server, b"GET /assets//app.css HTTP/1.1\r\nHost: evil.example\r\n"
                                           b"Connection: close\r\n\r\n")
    assert b"evil.example" not in head and status in (200, 404)


# 7. `make run` is the production server, on HOST and PORT.
def test_make_run_starts_the_production_server_on_host_and_port():
    dry = subprocess.run(["make", "-n", "run", "HOST=127.0.0.1", "PORT=5001"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "-m backend.serve --bind 127.0.0.1:5001" in dry


def test_make_dev_keeps_flasks_reloading_server():
    dry = subprocess.run(["make", "-n", "dev"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    assert "-m backend " in dry and "--reload" in dry


def test_the_dev_server_gives_the_batch_limit_its_own_message_too(client):
    response = client.post("/api/predict/batch", data=io.BytesIO(b"x" * (67_174_400 + 1)),
                                 content_type=f"multipart/form-data; boundary={BOUNDARY}")
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "batch_too_large"
