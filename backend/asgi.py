"""The production server's front door: bodies are read asynchronously, in full and on a deadline, before a thread
runs the Flask app.

Under granian's WSGI interface the app's threads read the request body themselves, so four clients that trickle a
body at 10 bytes every 5 s held every thread of a 2-worker server and `/api/health` went unanswered. Here granian
serves ASGI: a slow body costs one coroutine and its bytes, not a thread, and the pool of app threads (a bounded
number of requests in the models at once) only ever sees requests whose bodies have arrived. The front also refuses,
as JSON and before buffering anything, what the app would refuse anyway: a body over its limit (413), a body that
arrives too slowly (408), and more body bytes in flight than the worker will hold (503, with Retry-After).

When a client hangs up after its body arrived, `detector.client_gone` (a threading.Event in the WSGI environ) is
set, so the app can stop work nobody will read (backend/routes.py checks it between images).
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from backend.errors import body_too_large
from backend.settings import body_limit

log = logging.getLogger(__name__)

CLIENT_GONE_KEY = "detector.client_gone"


@dataclass(frozen=True)
class BodyPolicy:
    """How much body a request may send, and how fast it must arrive."""

    max_upload_bytes: int
    max_batch_bytes: int
    grace_seconds: float = 10.0  # every body gets this long, however small
    min_bytes_per_second: int = 32768  # ... plus its length at this rate (a 20 MiB upload: 10 + 640 s)
    idle_seconds: float = 10.0  # and no gap between two chunks may be longer than this
    max_inflight_bytes: int = 256 * 2**20  # bodies being received or waiting for a thread, per worker

    def limit_for(self, path: str) -> int:
        """The largest body accepted on this path."""
        return body_limit({"max_upload_bytes": self.max_upload_bytes, "max_batch_bytes": self.max_batch_bytes}, path)

    def deadline_for(self, length: int) -> float:
        """Seconds a body of `length` bytes may take to arrive."""
        return self.grace_seconds + length / self.min_bytes_per_second


class _BodyError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: tuple = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class _ClientGone(Exception):
    pass


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def _too_large(path: str, limit: int) -> _BodyError:
    return _BodyError(413, *body_too_large(path, limit))


class BufferedWSGI:
    """An ASGI application that runs a WSGI application on a bounded thread pool, bodies read first."""

    def __init__(self, wsgi_app, threads: int, policy: BodyPolicy) -> None:
        self.wsgi_app = wsgi_app
        self.policy = policy
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="app")
        self._inflight = 0

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive, send) -> None:
        limit = self.policy.limit_for(scope["path"])
        try:
            length = self._declared_length(scope, limit)
            # A body of unknown length (chunked) may grow to the limit; a request without one (GET) holds nothing.
            reserved = length if length is not None else (limit if _header(scope, b"transfer-encoding") else 0)
            if self._inflight + reserved > self.policy.max_inflight_bytes:
                raise _BodyError(503, "server_busy", "the server is receiving too many uploads at once; retry "
                                                     "shortly", ((b"retry-after", b"1"),))
            self._inflight += reserved
            try:
                body = await self._read_body(receive, length, limit, scope["path"])
                gone = threading.Event()
                watcher = asyncio.ensure_future(self._watch_disconnect(receive, gone))
                try:
                    status, headers, chunks = await asyncio.get_running_loop().run_in_executor(
                        self.executor, self._run_app, scope, body, gone)
                finally:
                    watcher.cancel()
            finally:
                self._inflight -= reserved
        except _ClientGone:
            return
        except _BodyError as error:
            await _send_error(send, error)
            return
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"".join(chunks)})
        except Exception:  # the client hung up while the app ran: there is no one left to answer
            log.debug("client gone before the response to %s was sent", scope["path"])

    def _declared_length(self, scope: dict, limit: int) -> int | None:
        raw = _header(scope, b"content-length")
        if raw is None:
            return None
        try:
            length = int(raw)
        except ValueError:
            raise _BodyError(400, "bad_request", "the Content-Length header is not a number") from None
        if length < 0:
            raise _BodyError(400, "bad_request", "the Content-Length header is negative")
        if length > limit:
            raise _too_large(scope["path"], limit)
        return length

    async def _read_body(self, receive, length: int | None, limit: int, path: str) -> bytes:
        """The whole body, or _BodyError (too large, too slow) / _ClientGone."""
        deadline = time.monotonic() + self.policy.deadline_for(length if length is not None else limit)
        parts, received = [], 0
        while True:
            wait = min(self.policy.idle_seconds, deadline - time.monotonic())
            try:
                if wait <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), wait)
            except (TimeoutError, asyncio.TimeoutError):
                raise _BodyError(408, "request_timeout",
                                 f"the request body did not arrive in time ({received:,} of "
                                 f"{'an unknown number of' if length is None else f'{length:,}'} bytes received)",
                                 ((b"connection", b"close"),)) from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise _too_large(path, limit)
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    @staticmethod
    async def _watch_disconnect(receive, gone: threading.Event) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    def _run_app(self, scope: dict, body: bytes, gone: threading.Event) -> tuple[int, list, list[bytes]]:
        """Runs in an app thread: the WSGI call, its whole response collected."""
        response: dict = {}

        def start_response(status: str, headers: list, exc_info=None):
            response["status"] = int(status.split(" ", 1)[0])
            response["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                                   for name, value in headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        result = self.wsgi_app(wsgi_environ(scope, body, gone), start_response)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return response["status"], response["headers"], chunks


def wsgi_environ(scope: dict, body: bytes, gone: threading.Event | None = None) -> dict:
    """The WSGI environ (PEP 3333) of an ASGI HTTP scope whose body has been read."""
    root = scope.get("root_path", "")
    path = scope["path"]
    server = scope.get("server") or ("localhost", 80)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode("utf-8").decode("latin-1"),
        "PATH_INFO": (path[len(root):] if root and path.startswith(root) else path).encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"), "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        CLIENT_GONE_KEY: gone or threading.Event(),
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(scope["client"][0]), str(scope["client"][1])
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in ("content-length", "transfer-encoding"):  # the body is whole: its length is all there is
            continue
        key = "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            value = environ[key] + ("; " if name == "cookie" else ",") + value
        environ[key] = value
    return environ


async def _send_error(send, error: _BodyError) -> None:
    body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *error.headers]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_asgi_app() -> BufferedWSGI:
    """The granian entry point (`backend.asgi:create_asgi_app`): the Flask app behind the buffering front."""
    from backend import create_app
    from backend.settings import serving_settings

    settings = serving_settings()
    policy = BodyPolicy(max_upload_bytes=settings["max_upload_bytes"], max_batch_bytes=settings["max_batch_bytes"],
                        grace_seconds=settings["body_grace_seconds"],
                        min_bytes_per_second=settings["body_min_bytes_per_second"],
                        idle_seconds=settings["body_idle_seconds"],
                        max_inflight_bytes=settings["max_inflight_body_bytes"])
    threads = int(settings.get("app_threads") or 2)
    return BufferedWSGI(create_app(), threads=threads, policy=policy)
