"""The static page without a browser: self-contained (nothing from other origins), built CSS present, and served by
the app with the right types."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from backend import create_app

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
SCRIPTS = sorted((FRONTEND / "assets" / "js").glob("*.js"))
# The SVG namespace is an identifier that createElementNS needs, never fetched.
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}
URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)>]*""", re.IGNORECASE)


def _external_urls(text: str) -> set[str]:
    return {url for url in URL.findall(text) if url not in ALLOWED_URLS}


def test_index_html_loads_nothing_from_another_origin():
    html = (FRONTEND / "index.html").read_text()
    assert _external_urls(html) == set()
    for attribute in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html):
        assert not re.match(r"^(?:[a-z]+:)?//", attribute, re.IGNORECASE), attribute


@pytest.mark.parametrize("path", [*SCRIPTS, FRONTEND / "assets" / "app.css"], ids=lambda p: p.name)
def test_scripts_and_styles_reference_no_other_origin(path):
    text = path.read_text()
    if path.suffix == ".css":
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)  # Tailwind's licence banner names its site
    assert _external_urls(text) == set()
    assert "@import url(" not in text and "@font-face" not in text  # system fonts only


def test_built_css_is_committed_minified_and_has_both_themes():
    css = (FRONTEND / "assets" / "app.css").read_text()
    assert len(css) > 5000
    assert css.count("\n") < 20, "app.css should be the minified build (make css)"
    assert "@apply" not in css and '@import "tailwindcss"' not in css, "app.css is the source, not the build"
    for selector in (".dark", ".drop-zone", "[data-dragging]", ".model-card", ".bar-fill", ".sr-only"):
        assert selector in css, f"{selector} missing from the build: run `make css`"


def test_theme_is_applied_by_an_inline_script_before_the_stylesheet():
    html = (FRONTEND / "index.html").read_text()
    head = html[:html.index("</head>")]
    inline = head.index("<script>")
    assert inline < head.index('rel="stylesheet"')
    assert "localStorage" in head[inline:] and "prefers-color-scheme" in head[inline:]


def test_every_module_import_resolves():
    for script in SCRIPTS:
        for target in re.findall(r"""^import .* from "(\.[^"]+)";""", script.read_text(), re.MULTILINE):
            assert (script.parent / target).resolve().is_file(), f"{script.name} imports missing {target}"
    html = (FRONTEND / "index.html").read_text()
    for source in re.findall(r"""<script type="module" src="([^"]+)">""", html):
        assert (FRONTEND / source).is_file()


def test_the_app_serves_the_page_and_its_assets(tmp_path):
    # An empty weights folder: the models fail to load in the background, which static files do not care about.
    client = create_app({"weights_dir": str(tmp_path)}).test_client()
    page = client.get("/")
    assert page.status_code == 200 and b'id="drop-zone"' in page.data
    css = client.get("/assets/app.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    for script in SCRIPTS:
        served = client.get(f"/assets/js/{script.name}")
        # Browsers refuse module scripts served with a non-JavaScript type.
        assert served.status_code == 200 and served.mimetype in ("text/javascript", "application/javascript")


def test_every_sample_is_listed_with_its_source_and_licence_and_the_set_stays_small():
    import json

    folder = FRONTEND / "assets" / "samples"
    manifest = json.loads((folder / "samples.json").read_text())
    listed = {sample["file"] for sample in manifest["samples"]}
    assert listed == {path.name for path in folder.glob("*.jpg")}
    for sample in manifest["samples"]:
        assert sample["licence"] and sample["source"] and sample["truth"] in ("REAL", "FAKE")
        fixture = Path(__file__).resolve().parents[2] / sample["from"]
        assert (folder / sample["file"]).read_bytes() == fixture.read_bytes()  # bytes unchanged
    assert sum(path.stat().st_size for path in folder.iterdir()) < 40_000
    buttons = re.findall(r'data-sample="([^"]+)">([^<]+)</button>', (FRONTEND / "index.html").read_text())
    assert buttons == [(sample["file"], sample["title"]) for sample in manifest["samples"]]
