"""Production server: `python -m backend.serve` (and `make run`) runs the app under granian: HTTP in Rust, and the
Flask app behind backend/asgi.py, which reads every body asynchronously before an app thread runs the request.

Settings come from the environment (flags override them):

    DETECTOR_BIND           host:port to listen on (default: config serving.host and serving.port)
    DETECTOR_WORKERS        worker processes (default: one per core)
    DETECTOR_THREADS        threads per worker that run the app, and so requests in the models at once (default 2)
    DETECTOR_TORCH_THREADS  intra-op threads of the model runtimes per worker (default 1)
    DETECTOR_ACCESS_LOG     any non-empty value logs every request (default: off; it costs time per request)

Each worker builds the app, and so loads the models, in its own process; the workers together use the machine's
cores without oversubscribing them. HTTP parsing, keep-alive and socket I/O run in granian's Rust threads,
outside the GIL: against gunicorn's gthread workers this cut the server's CPU per 32x32 request from 3.4-3.8 to
3.1-3.3 ms (docs/speed.md). A body over its limit is refused from its Content-Length before it is read, a body that
trickles in is cut off with 408 (config serving.body_*), and no app thread ever waits on a client.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Mapping

from backend.settings import serving_settings

APP_FACTORY = "backend.asgi:create_asgi_app"
# glibc's malloc, read by each worker at start: allocations over 128 KiB (decoded images, tiles) are their own
# mappings, returned to the system when freed. By default the threshold grows with every large free, up to 32 MiB,
# and a worker kept the peak of its largest upload for good (2.6 GB afterwards); two arenas, not one per thread.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072", "MALLOC_ARENA_MAX": "2"}
DEFAULT_THREADS = 2
DEFAULT_TORCH_THREADS = 1


@dataclass(frozen=True)
class ProductionSettings:
    """How the production server runs: where it listens, and its processes and threads."""

    host: str
    port: int
    workers: int
    threads: int
    torch_threads: int
    access_log: bool

    def describe(self) -> dict:
        """The settings as a plain dict, for benchmark reports."""
        return {"server": "granian", "interface": "asgi", **asdict(self)}


def _positive(value: str | int, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {number}")
    return number


def _bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"DETECTOR_BIND must look like host:port, got {value!r}")
    return host.strip("[]"), _positive(port, "the port in DETECTOR_BIND")


def production_settings(env: Mapping[str, str] | None = None) -> ProductionSettings:
    """The effective settings under `env` (default: this process's environment)."""
    env = os.environ if env is None else env
    serving = serving_settings()
    host, port = _bind(env.get("DETECTOR_BIND") or f"{serving['host']}:{serving['port']}")
    return ProductionSettings(
        host=host, port=port,
        workers=_positive(env.get("DETECTOR_WORKERS") or os.cpu_count() or 1, "DETECTOR_WORKERS"),
        threads=_positive(env.get("DETECTOR_THREADS") or DEFAULT_THREADS, "DETECTOR_THREADS"),
        torch_threads=_positive(env.get("DETECTOR_TORCH_THREADS") or DEFAULT_TORCH_THREADS, "DETECTOR_TORCH_THREADS"),
        access_log=bool(env.get("DETECTOR_ACCESS_LOG")))


def build_server(settings: ProductionSettings):
    """A granian server for the app factory with these settings (not started)."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    return Granian(APP_FACTORY, factory=True, interface=Interfaces.ASGI, address=settings.host, port=settings.port,
                   workers=settings.workers, http=HTTPModes.http1, websockets=False, log_access=settings.access_log,
                   respawn_failed_workers=True)


def main(argv: list[str] | None = None) -> None:
    """Parse flags over the environment's settings and serve until stopped (SIGTERM or Ctrl-C)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", help="host:port (default: DETECTOR_BIND, else the config's host and port)")
    parser.add_argument("--workers", help="worker processes (default: DETECTOR_WORKERS, else one per core)")
    parser.add_argument("--threads", help="app threads per worker (default: DETECTOR_THREADS, else 2)")
    parser.add_argument("--torch-threads", help="model runtime threads per worker (default: DETECTOR_TORCH_THREADS, "
                                                "else 1)")
    parser.add_argument("--print-settings", action="store_true", help="print the effective settings as JSON and exit")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    for flag, variable in (("bind", "DETECTOR_BIND"), ("workers", "DETECTOR_WORKERS"),
                           ("threads", "DETECTOR_THREADS"), ("torch_threads", "DETECTOR_TORCH_THREADS")):
        if getattr(args, flag):
            env[variable] = getattr(args, flag)
    try:
        settings = production_settings(env)
    except ValueError as error:
        parser.error(str(error))
    if args.print_settings:
        print(json.dumps(settings.describe()))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The workers read their serving settings from the environment they inherit.
    os.environ["DETECTOR_TORCH_THREADS"] = str(settings.torch_threads)
    os.environ["DETECTOR_THREADS"] = str(settings.threads)
    for variable, value in MALLOC_ENV.items():
        os.environ.setdefault(variable, value)
    logging.getLogger(__name__).info("serving on http://%s:%d with %s", settings.host, settings.port,
                                     settings.describe())
    build_server(settings).serve()


if __name__ == "__main__":
    main()
