"""backend/pages.py with Flask's test client: the page and its assets, compressed, versioned, cached, revalidated."""
from __future__ import annotations

import gzip
import os
import re
import shutil
from pathlib import Path

import pytest

from backend import create_app
from backend.pages import IMMUTABLE, REVALIDATE

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # An empty weights folder: the models fail to load in the background, which static files do not care about.
    return create_app({"weights_dir": str(tmp_path_factory.mktemp("no_weights"))}).test_client()


@pytest.fixture
def copied_client(tmp_path):
    """An app serving a copy of frontend/, which a test may edit."""
    shutil.copytree(FRONTEND, tmp_path / "frontend")
    app = create_app({"weights_dir": str(tmp_path / "none")})
    app.extensions.pop("page_assets")
    from backend.pages import AssetStore
    app.extensions["page_assets"] = AssetStore(tmp_path / "frontend")
    return app.test_client(), tmp_path / "frontend"


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)="(assets/[^"]+)""", html)


def _page(client) -> str:
    return gzip.decompress(client.get("/", headers=GZIP).data).decode()


def test_the_page_is_its_own_blueprint(client):
    assert "pages" in client.application.blueprints
    assert client.application.url_map.bind("localhost").match("/")[0] == "pages.index"


def test_the_page_names_its_assets_under_one_build_and_is_revalidated(client):
    response = client.get("/", headers=GZIP)
    assert response.status_code == 200 and response.headers["Cache-Control"] == REVALIDATE
    assert response.headers["Content-Encoding"] == "gzip" and response.headers["Vary"] == "Accept-Encoding"
    assert int(response.headers["Content-Length"]) == len(response.data)
    html = gzip.decompress(response.data).decode()
    assert b'id="drop-zone"' in html.encode()
    urls = _asset_urls(html)
    assert {url.split("/")[1] for url in urls} == {url.split("/")[1] for url in urls[:1]}  # one build for all
    assert re.fullmatch(r"[0-9a-f]{12}", urls[0].split("/")[1])
    assert any(url.endswith("/app.css") for url in urls) and any(url.endswith("/js/main.js") for url in urls)


def test_versioned_assets_are_cached_for_good_and_gzipped_when_asked(client):
    for url in _asset_urls(_page(client)):
        plain = client.get("/" + url)
        packed = client.get("/" + url, headers=GZIP)
        assert plain.status_code == packed.status_code == 200
        assert plain.headers["Cache-Control"] == packed.headers["Cache-Control"] == IMMUTABLE
        assert "Content-Encoding" not in plain.headers and packed.headers["Content-Encoding"] == "gzip"
        assert plain.headers["Vary"] == packed.headers["Vary"] == "Accept-Encoding"
        assert gzip.decompress(packed.data) == plain.data == (FRONTEND / "assets" / url.split("/", 2)[2]).read_bytes()
        assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data) / 2
        assert plain.headers["ETag"] != packed.headers["ETag"]  # two representations, two tags


def test_module_scripts_get_a_javascript_type_and_imports_resolve_in_the_build(client):
    main = next(url for url in _asset_urls(_page(client)) if url.endswith("main.js"))
    build_dir = main.rsplit("/", 1)[0]
    source = client.get("/" + main).data.decode()
    for target in re.findall(r"""^import .* from "\./([^"]+)";""", source, re.MULTILINE):
        served = client.get(f"/{build_dir}/{target}")
        assert served.status_code == 200 and served.headers["Cache-Control"] == IMMUTABLE
        assert served.mimetype == "text/javascript"


@pytest.mark.parametrize("accept", ["", "identity", "gzip;q=0", "br"])
def test_no_gzip_unless_the_client_accepts_it(client, accept):
    response = client.get("/assets/app.css", headers={"Accept-Encoding": accept} if accept else {})
    assert "Content-Encoding" not in response.headers
    assert response.data == (FRONTEND / "assets" / "app.css").read_bytes()
    assert response.headers["Vary"] == "Accept-Encoding"


def test_if_none_match_gets_304_without_a_body_for_the_same_encoding_only(client):
    first = client.get("/assets/app.css", headers=GZIP)
    again = client.get("/assets/app.css", headers={**GZIP, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"] and again.headers["Vary"] == "Accept-Encoding"
    weak = client.get("/assets/app.css", headers={**GZIP, "If-None-Match": "W/" + first.headers["ETag"]})
    assert weak.status_code == 304
    other = client.get("/assets/app.css", headers={"If-None-Match": first.headers["ETag"]})  # wants identity now
    assert other.status_code == 200 and other.data == (FRONTEND / "assets" / "app.css").read_bytes()
    page = client.get("/", headers=GZIP)
    assert client.get("/", headers={**GZIP, "If-None-Match": page.headers["ETag"]}).status_code == 304


def test_unversioned_and_stale_builds_are_served_but_revalidated(client):
    assert client.get("/assets/js/main.js").headers["Cache-Control"] == REVALIDATE
    stale = client.get("/assets/000000000000/js/main.js")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == REVALIDATE


@pytest.mark.parametrize("path", ["/assets/missing.js", "/assets/../index.html", "/assets/%2e%2e/index.html",
                                  "/assets/0123456789ab/../../backend/app.py", "/assets/js"])
def test_nothing_outside_the_assets_is_served(client, path):
    assert client.get(path).status_code == 404


def test_head_gives_the_length_without_the_body(client):
    head = client.head("/assets/app.css", headers=GZIP)
    full = client.get("/assets/app.css", headers=GZIP)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == full.headers["Content-Length"]


def test_an_edited_file_is_served_at_once_under_a_new_build(copied_client):
    client, frontend = copied_client
    before = _asset_urls(_page(client))
    css = frontend / "assets" / "app.css"
    css.write_text(css.read_text() + "\n/* edited */")
    os.utime(css, ns=(css.stat().st_mtime_ns + 10**9,) * 2)
    after = _asset_urls(_page(client))
    assert before != after and before[0].split("/")[1] != after[0].split("/")[1]
    css_url = next(url for url in after if url.endswith("app.css"))
    assert client.get("/" + css_url).data.endswith(b"/* edited */")
    # The old build's URL still answers, with the new content, but is no longer cached for good.
    old = client.get("/" + next(url for url in before if url.endswith("app.css")))
    assert old.data.endswith(b"/* edited */") and old.headers["Cache-Control"] == REVALIDATE


def test_request_checks_sit_on_the_blueprint_they_guard(client):
    checks = {scope: [function.__name__ for function in functions]
              for scope, functions in client.application.before_request_funcs.items()}
    assert checks.get("api") == ["batch_body_limit"] and None not in checks and "pages" not in checks
