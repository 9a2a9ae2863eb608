"""`python -m backend --host 127.0.0.1 --port 5000 [--reload]`: Flask's threaded server, for development (`make dev`).

It reads each request body in an app thread and has no body deadline: `make run` and production use
`python -m backend.serve` (granian behind backend/asgi.py, a worker per core; see the README).
"""
from __future__ import annotations

import argparse
import logging

from backend import create_app
from backend.settings import serving_settings


def main(argv: list[str] | None = None) -> None:
    """Parse flags and run the threaded server."""
    defaults = serving_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=defaults["host"], help="interface (default %(default)s)")
    parser.add_argument("--port", type=int, default=defaults["port"], help="port (default %(default)s)")
    parser.add_argument("--weights-dir", help="folder with cnn.pt and efficientnet_b0.pt (default saved_models/)")
    parser.add_argument("--cors-origins", help="comma-separated origins allowed to call /api (default *)")
    parser.add_argument("--reload", action="store_true", help="restart when a source file changes (development)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: v for k, v in {"weights_dir": args.weights_dir, "cors_origins": args.cors_origins}.items() if v}
    app = create_app(overrides)
    app.run(host=args.host, port=args.port, threaded=True, debug=False, use_reloader=args.reload)


if __name__ == "__main__":
    main()
