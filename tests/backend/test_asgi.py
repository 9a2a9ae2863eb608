"""backend/asgi.py, in process: bodies are read whole before a thread runs the app; too large, too slow and gone."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest

from backend.asgi import CLIENT_GONE_KEY, BodyPolicy, BufferedWSGI, wsgi_environ

POLICY = BodyPolicy(max_upload_bytes=1000, max_batch_bytes=5000, grace_seconds=0.3, min_bytes_per_second=10_000,
                    idle_seconds=0.2, max_inflight_bytes=1_000_000)


def echo_app(environ, start_response):
    """A WSGI app that reports what it was given."""
    body = environ["wsgi.input"].read()
    payload = json.dumps({"path": environ["PATH_INFO"], "query": environ["QUERY_STRING"], "length": len(body),
                          "content_length": environ["CONTENT_LENGTH"], "type": environ.get("CONTENT_TYPE"),
                          "thread": threading.current_thread().name, "gone": environ[CLIENT_GONE_KEY].is_set(),
                          "accept": environ.get("HTTP_ACCEPT")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [payload]


def scope(path="/api/predict", headers=(), method="POST"):
    return {"type": "http", "method": method, "path": path, "query_string": b"explain=false", "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers], "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 5000), "client": ("127.0.0.1", 40000)}


def run(front, request_scope, messages, delays=None):
    """Drive one request: `messages` are what the client sends, each after its delay; returns (status, body)."""
    sent = []
    queue = list(zip(messages, delays or [0] * len(messages)))

    async def receive():
        if queue:
            message, delay = queue.pop(0)
            await asyncio.sleep(delay)
            return message
        await asyncio.sleep(3600)  # the client says nothing more (it neither sends nor hangs up)

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(front(request_scope, receive, send), 5))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), dict(start["headers"])


def chunk(data, more=False):
    return {"type": "http.request", "body": data, "more_body": more}


@pytest.fixture
def front():
    return BufferedWSGI(echo_app, threads=2, policy=POLICY)


def test_the_app_runs_on_a_pool_thread_once_the_whole_body_has_arrived(front):
    status, body, _ = run(front, scope(headers=[("content-type", "image/png"), ("content-length", "6"),
                                                ("accept", "a"), ("Accept", "b")]),
                          [chunk(b"abc", more=True), chunk(b"def")])
    assert status == 200
    assert body == {"path": "/api/predict", "query": "explain=false", "length": 6, "content_length": "6",
                    "type": "image/png", "thread": body["thread"], "gone": False, "accept": "a,b"}
    assert body["thread"].startswith("app")


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read(front):
    status, body, _ = run(front, scope(headers=[("content-length", "999999")]), [])
    assert status == 413 and body["error"]["code"] == "image_too_large" and "66,536" in body["error"]["message"]


def test_the_batch_path_has_its_own_limit_and_its_own_message(front):
    status, body, _ = run(front, scope("/api/predict/batch", [("content-length", "2000")]), [chunk(b"x" * 2000)])
    assert status == 200
    status, body, _ = run(front, scope("/api/predict/batch", [("content-length", "700000000")]), [])
    assert status == 413 and body["error"]["code"] == "batch_too_large"
    assert "batch" in body["error"]["message"] and f"{5000 + 65536:,}" in body["error"]["message"]


def test_a_chunked_body_is_cut_off_when_it_passes_the_limit(front):
    status, body, _ = run(front, scope(), [chunk(b"x" * 40_000, more=True), chunk(b"x" * 40_000, more=True)])
    assert status == 413


def test_a_body_that_stops_arriving_gets_408(front):
    status, body, headers = run(front, scope(headers=[("content-length", "100")]), [chunk(b"x" * 10, more=True)])
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert "10 of 100 bytes" in body["error"]["message"] and headers[b"connection"] == b"close"


def test_a_body_that_trickles_in_past_its_deadline_gets_408(front):
    trickle = [chunk(b"x", more=True)] * 20
    status, body, _ = run(front, scope(headers=[("content-length", "500")]), trickle, delays=[0.1] * 20)
    assert status == 408


def test_a_client_that_hangs_up_mid_body_gets_nothing_and_runs_nothing(front):
    calls = []
    front.wsgi_app = lambda environ, start_response: calls.append(1)
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(front(scope(headers=[("content-length", "10")]), receive, send))
    assert sent == [] and calls == []


def test_a_hang_up_after_the_body_is_visible_to_the_app():
    seen = {}

    def slow_app(environ, start_response):
        seen["gone"] = environ[CLIENT_GONE_KEY].wait(2)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    front = BufferedWSGI(slow_app, threads=1, policy=POLICY)
    run(front, scope(), [chunk(b"abc"), {"type": "http.disconnect"}])
    assert seen["gone"] is True


def test_too_many_bytes_in_flight_gets_503_with_retry_after():
    front = BufferedWSGI(echo_app, threads=1, policy=BodyPolicy(max_upload_bytes=1000, max_batch_bytes=1000,
                                                                 max_inflight_bytes=500))
    status, body, headers = run(front, scope(headers=[("content-length", "800")]), [])
    assert status == 503 and body["error"]["code"] == "server_busy" and headers[b"retry-after"] == b"1"


def test_requests_without_a_body_are_answered_even_when_uploads_fill_the_worker():
    front = BufferedWSGI(echo_app, threads=1, policy=BodyPolicy(max_upload_bytes=1000, max_batch_bytes=1000,
                                                                 max_inflight_bytes=500))
    front._inflight = 500  # as if slow uploads held every byte the worker allows
    status, body, _ = run(front, scope("/api/health", method="GET"), [chunk(b"")])
    assert status == 200 and body["path"] == "/api/health"
    status, body, _ = run(front, scope(headers=[("transfer-encoding", "chunked")]), [])
    assert status == 503


def test_the_environ_follows_pep_3333():
    environ = wsgi_environ(scope("/caf\u00e9", [("cookie", "a=1"), ("cookie", "b=2"), ("transfer-encoding", "chunked")]),
                           b"body")
    assert environ["PATH_INFO"] == "/caf\u00e9".encode().decode("latin-1")
    assert environ["HTTP_COOKIE"] == "a=1; b=2" and "HTTP_TRANSFER_ENCODING" not in environ
    assert environ["CONTENT_LENGTH"] == "4" and environ["wsgi.input"].read() == b"body"
    assert environ["SERVER_PORT"] == "5000" and environ["REMOTE_ADDR"] == "127.0.0.1"


def test_lifespan_is_answered():
    front = BufferedWSGI(echo_app, threads=1, policy=POLICY)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(front({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
