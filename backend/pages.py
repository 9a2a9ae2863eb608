"""The page's blueprint: frontend/index.html at / and its static assets, compressed and cacheable.

Assets are served under a versioned prefix, `/assets/<build>/...`, where `<build>` is a hash of every file under
frontend/assets/. index.html is rewritten (in memory) to point there, so its relative ES module imports (`./api.js`)
resolve inside the same versioned folder with no import rewriting. Versioned URLs never change content, so they are
cached for a year (`immutable`); index.html, and any asset asked for without the current build (`/assets/app.css`,
or an old build after a deploy), is revalidated every time (`no-cache` + ETag -> 304). One changed file changes the
build and so every asset URL: the whole page is about 26 KB gzipped, a price paid once per deploy.

Each file is read, hashed and gzipped once, when first asked for, and kept in memory; its (mtime, size) is checked
on every request, so `make dev` serves an edited file at once. Gzip only: brotli would save a few KB more but adds a
native dependency, and stdlib gzip already brings the first visit under the 30 KB aim.
"""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, abort, request

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
COMPRESSIBLE = ("text/", "application/json", "application/javascript", "image/svg+xml")
# A build id is hex; anything else after /assets/ is an unversioned path.
BUILD = re.compile(r"^[0-9a-f]{12}$")
# index.html's own references to assets: src="assets/..." and href="assets/...".
ASSET_REFERENCE = re.compile(rb"""((?:src|href)=["'])assets/""")

bp = Blueprint("pages", __name__)


@dataclass(frozen=True)
class Variant:
    """One encoding of a file: its bytes and its ETag."""

    body: bytes
    etag: str
    encoding: str | None  # None: identity


@dataclass(frozen=True)
class Asset:
    """A file as served: its type, its identity bytes and, when gzip pays, a gzipped copy."""

    stamp: tuple[int, int]  # (mtime_ns, size) of the file it was read from
    mimetype: str
    identity: Variant
    gzipped: Variant | None

    @classmethod
    def build(cls, data: bytes, mimetype: str, stamp: tuple[int, int]) -> Asset:
        """Hash `data` and gzip it once, if its type compresses."""
        digest = hashlib.sha256(data).hexdigest()[:20]
        identity = Variant(data, f'"{digest}"', None)
        gzipped = None
        if mimetype.startswith(COMPRESSIBLE):
            packed = gzip.compress(data, compresslevel=9, mtime=0)
            if len(packed) < len(data) * 0.9:
                gzipped = Variant(packed, f'"{digest}-gz"', "gzip")
        return cls(stamp, mimetype, identity, gzipped)

    @property
    def compressible(self) -> bool:
        return self.gzipped is not None

    def variant_for(self, accepts_gzip: bool) -> Variant:
        return self.gzipped if accepts_gzip and self.gzipped else self.identity


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


def _mimetype(path: Path) -> str:
    if path.suffix in (".js", ".mjs"):
        return "text/javascript; charset=utf-8"  # browsers refuse module scripts of any other type
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") or guessed == "application/json" else guessed


class AssetStore:
    """The page's files, read, hashed and compressed once each, and re-read when they change on disk."""

    def __init__(self, root: Path = FRONTEND_DIR) -> None:
        self.root = root.resolve()
        self.assets_dir = self.root / "assets"
        self._cache: dict[tuple[Path, str], Asset] = {}
        self._build: tuple[tuple, str] | None = None  # (stamps of every asset, build id)
        self._lock = threading.Lock()

    def resolve_asset(self, relative: str) -> Path | None:
        """The file under assets/ that `relative` names, or None (missing, or outside assets/)."""
        path = (self.assets_dir / relative).resolve()
        if not path.is_relative_to(self.assets_dir) or not path.is_file():
            return None
        return path

    def get(self, path: Path, transform=None, variant: str = "") -> Asset:
        """The served form of `path`; `transform(bytes) -> bytes` rewrites it first (index.html), and `variant`
        names what the transform depends on (the build), so that a new one is not served from the old cache."""
        stamp = _stamp(path)
        key = (path, variant)
        cached = self._cache.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached
        data = path.read_bytes()
        if transform is not None:
            data = transform(data)
        asset = Asset.build(data, _mimetype(path), stamp)
        with self._lock:
            self._cache[key] = asset
        return asset

    def build_id(self) -> str:
        """A hash of every file under assets/: it changes whenever any of them does."""
        files = sorted(path for path in self.assets_dir.rglob("*") if path.is_file())
        stamps = tuple((path, _stamp(path)) for path in files)
        if self._build is not None and self._build[0] == stamps:
            return self._build[1]
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(self.assets_dir)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        build = digest.hexdigest()[:12]
        self._build = (stamps, build)
        return build

    def index(self) -> Asset:
        """index.html with its asset references moved under the current build."""
        build = self.build_id()
        return self.get(self.root / "index.html",
                        transform=lambda html: ASSET_REFERENCE.sub(rb"\g<1>assets/" + build.encode() + b"/", html),
                        variant=build)


def _accepts_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def send_asset(asset: Asset, cache_control: str) -> Response:
    """The asset in the encoding the client accepts, with its ETag; 304 when the client already has it."""
    variant = asset.variant_for(_accepts_gzip())
    headers = {"ETag": variant.etag, "Cache-Control": cache_control}
    if asset.compressible:
        headers["Vary"] = "Accept-Encoding"
    if request.if_none_match.contains_weak(variant.etag.strip('"')):
        return Response(status=304, headers=headers)
    if variant.encoding:
        headers["Content-Encoding"] = variant.encoding
    return Response(variant.body, content_type=asset.mimetype, headers=headers)


def _store() -> AssetStore:
    from flask import current_app

    return current_app.extensions["page_assets"]


@bp.record_once
def _create_store(state) -> None:
    state.app.extensions.setdefault("page_assets", AssetStore(state.app.config.get("FRONTEND_DIR", FRONTEND_DIR)))


@bp.get("/")
def index():
    """The page, revalidated on every visit (it names the current build of its assets)."""
    return send_asset(_store().index(), REVALIDATE)


@bp.get("/assets/<path:asset>")
def static_asset(asset: str):
    """An asset: cached for good under the current build, revalidated otherwise."""
    store = _store()
    first, _, rest = asset.partition("/")
    versioned = bool(BUILD.match(first)) and bool(rest)
    path = store.resolve_asset(rest if versioned else asset)
    if path is None:
        abort(404)
    fresh = versioned and first == store.build_id()
    return send_asset(store.get(path), IMMUTABLE if fresh else REVALIDATE)
