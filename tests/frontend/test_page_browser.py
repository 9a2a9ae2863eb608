"""The web page in a real browser: headless Chromium (Debian's chromium + chromium-driver) against the real server
on loopback. Also writes the screenshots committed under docs/screenshots/."""
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.live_server import PROJECT_ROOT, LiveServer, free_port

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Screenshots are always taken; they replace the committed ones in docs/screenshots only when asked
# (`make screenshots`), so an ordinary test run leaves the working tree clean.
COMMITTED_SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
# The server reads DETECTOR_WEIGHTS_DIR when it is set, and saved_models/ (the shipped weights) otherwise.
SHIPPED_WEIGHTS_DIR = Path(os.environ.get("DETECTOR_WEIGHTS_DIR", PROJECT_ROOT / "saved_models"))
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT = 60  # seconds; generous because CI machines are slow and also run the models on CPU

# Chromium always exists in CI (`make test` installs it), so a missing browser is a broken set-up, not a reason to
# skip: fail loudly and say how to fix it.
MISSING_BROWSER = ("headless Chromium is required for the browser tests but {missing} is missing. Install Debian's "
                   "chromium and chromium-driver with `make browser-deps` (as root; `make test` runs it).")


def _require_browser() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(MISSING_BROWSER.format(missing=" and ".join(missing)), pytrace=False)


@pytest.fixture(scope="module")
def server(tiny_weights_dir):
    live = LiveServer(tiny_weights_dir)
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def server_without_models(tmp_path_factory):
    """A server whose weights folder is empty: it serves the page, and answers 503 to readiness and predictions."""
    live = LiveServer(tmp_path_factory.mktemp("no_weights"))
    try:
        _wait_alive(live)
        yield live
    finally:
        live.stop()


def _wait_alive(live: LiveServer, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if live.request("GET", "/api/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not start")


@pytest.fixture
def browser():
    """A fresh headless Chromium with an empty profile (so no theme or cache leaks between tests)."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"]:
        options.add_argument(flag)
    # Every request the browser makes, for the same-origin check.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # An explicit driver path: Selenium then never runs selenium-manager, which would try to download a browser.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_script_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --- helpers -------------------------------------------------------------------------------------------------------

def _wait(driver, condition, message: str, timeout: float = TIMEOUT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)


def _js(script: str):
    """A wait condition that is true when the JavaScript expression is truthy."""
    return lambda driver: driver.execute_script(f"return {script};")


def _open(driver, base: str, ready_state: str = "ready") -> None:
    driver.get(base + "/")
    _wait(driver, _js(f"document.getElementById('service-status').dataset.state === '{ready_state}'"),
          f"the page never showed the service as {ready_state}")


def _upload(driver, *paths: Path) -> None:
    from selenium.webdriver.common.by import By

    # Chromium accepts several files in one send_keys, separated by newlines.
    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(path) for path in paths))


def _wait_all_settled(driver, count: int) -> None:
    _wait(driver, _js(f"[...document.querySelectorAll('#queue-list li')].filter(li => "
                      f"['done', 'error'].includes(li.dataset.status)).length === {count}"),
          f"{count} queued file(s) never finished")


def _visible(driver, element_id: str) -> bool:
    return driver.execute_script(
        "const node = document.getElementById(arguments[0]);"
        "return Boolean(node) && node.getClientRects().length > 0 && !node.closest('[hidden]')"
        # Chromium keeps the boxes of a closed <details>'s content (content-visibility: hidden); this sees through it.
        " && node.checkVisibility();", element_id)


def _text(driver, element_id: str) -> str:
    return driver.execute_script("return document.getElementById(arguments[0]).textContent;", element_id)


def _first(folder: Path, kind: str) -> Path:
    return sorted((folder / kind).glob("*.jpg"))[0]


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _own_percent(answer: dict) -> str:
    """A verdict's or a model's confidence in its own answer, as the page writes it (issue #15: a real photo at
    p_fake 0.01 reads "99.0%", never "1.0%")."""
    return _percent(answer["p_fake"] if answer["label"] == "FAKE" else 1 - answer["p_fake"])


def _answer(label: str) -> str:
    return "AI-generated" if label == "FAKE" else "Real photo"


def _drop_files(driver, files: list[tuple[str, bytes, str]]) -> dict:
    """Build Files in the page from bytes, and drop them on the drop zone with synthetic drag events."""
    payload = [{"name": name, "type": kind, "data": base64.b64encode(data).decode()} for name, data, kind in files]
    return driver.execute_script("""
        const transfer = new DataTransfer();
        for (const {name, type, data} of arguments[0]) {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], name, {type}));
        }
        const zone = document.getElementById('drop-zone');
        const fire = (type) => zone.dispatchEvent(
            new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
        fire('dragenter');
        const overAccepted = !fire('dragover');  // a drop target cancels dragover
        const highlighted = zone.hasAttribute('data-dragging');
        fire('drop');
        return {highlighted, overAccepted, highlightedAfterDrop: zone.hasAttribute('data-dragging')};
    """, payload)


# WCAG AA: 4.5:1 for body text, 3:1 for large text. Colours are read through a canvas, which turns any CSS colour
# (Tailwind 4 writes oklch) into sRGB bytes; backgrounds are composited up the ancestor chain.
CONTRAST_SCRIPT = """
const ctx = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
function rgba(color) {
  ctx.clearRect(0, 0, 1, 1);
  ctx.fillStyle = '#000';
  ctx.fillStyle = color;
  ctx.fillRect(0, 0, 1, 1);
  const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data;
  return [r, g, b, a / 255];
}
const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat(1);
function background(node) {
  const layers = [];
  for (let n = node; n; n = n.parentElement) {
    const style = getComputedStyle(n);
    if (style.backgroundImage !== 'none') return null;  // gradients and images: not judged here
    const colour = rgba(style.backgroundColor);
    if (colour[3] > 0) layers.push(colour);
    if (colour[3] === 1) break;
  }
  let result = [255, 255, 255, 1];
  for (const layer of layers.reverse()) result = over(layer, result);
  return result;
}
function luminance([r, g, b]) {
  const [R, G, B] = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * R + 0.7152 * G + 0.0722 * B;
}
const failures = [];
for (const node of document.body.querySelectorAll('*')) {
  const ownText = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim());
  if (!ownText || node.closest('.sr-only, [hidden], svg') || !node.getClientRects().length) continue;
  const style = getComputedStyle(node);
  if (style.visibility === 'hidden') continue;
  const bg = background(node);
  if (!bg) continue;
  let opacity = 1;
  for (let n = node; n; n = n.parentElement) opacity *= Number(getComputedStyle(n).opacity);
  const text = rgba(style.color);
  const fg = over([text[0], text[1], text[2], text[3] * opacity], bg);
  const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) {
    failures.push({text: node.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100,
                   color: style.color, background: bg.map(Math.round).join(',')});
  }
}
return failures;
"""


def _requested_urls(driver) -> list[str]:
    """Every URL the browser asked for: Chrome's network log plus the page's own Resource Timing entries."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    urls += driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)"
                                  ".concat(performance.getEntriesByType('navigation').map((e) => e.name));")
    return urls


def _set_viewport(driver, width: int, height: int, mobile: bool) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def _full_page_png(driver) -> bytes:
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    return base64.b64decode(shot["data"])


# --- tests ---------------------------------------------------------------------------------------------------------

def test_file_input_upload_shows_the_servers_verdict_model_cards_and_heatmap(server, browser, cifake_test_sample):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    image = _first(cifake_test_sample, "FAKE")
    status, expected = server.request("POST", "/api/predict", image.read_bytes(), "image/jpeg")
    assert status == 200

    _open(browser, server.base)
    _upload(browser, image)
    _wait_all_settled(browser, 1)

    verdict = expected["verdict"]
    label = "UNCERTAIN" if verdict["uncertain"] else verdict["label"]
    assert browser.execute_script("return document.getElementById('verdict').dataset.label;") == label
    assert _own_percent(verdict) in _text(browser, "verdict-detail")
    assert _text(browser, "result-heading") == image.name
    assert "32×32 JPEG" in _text(browser, "result-facts")

    cards = browser.find_elements(By.CSS_SELECTOR, "#model-cards .model-card")
    assert [card.get_attribute("data-model") for card in cards] == [m["name"] for m in expected["models"]]
    for card, model in zip(cards, expected["models"]):
        assert card.get_attribute("data-label") == model["label"]
        # The answer in words with the model's confidence in it, and the chance of AI the bar shows.
        assert f"{_answer(model['label'])} · {_own_percent(model)} sure" in card.text
        assert f"{_percent(model['p_fake'])} chance of AI" in card.text
        share = browser.execute_script("const [bar, fill] = [arguments[0], arguments[0].firstElementChild];"
                                       "return fill.getBoundingClientRect().width / bar.getBoundingClientRect().width;",
                                       card.find_element(By.CSS_SELECTOR, ".bar"))
        assert share == pytest.approx(model["p_fake"], abs=0.01)
    marked = [card.get_attribute("data-model") for card in cards if card.get_attribute("data-heatmap-source") == "true"]
    assert marked == [expected["explanation"]["model"]]
    marked_card = next(card for card in cards if card.get_attribute("data-heatmap-source") == "true")
    assert "heatmap comes from this model" in marked_card.text

    # The heatmap is painted from the raw values, over the preview, and fades with the slider. Each cell's alpha
    # follows its value (issue #15): transparent where the model paid no attention, opaque where it paid most.
    painted = browser.execute_script("""
        const canvas = document.getElementById('heatmap-canvas');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const preview = document.getElementById('preview-image');
        return {width: canvas.width, height: canvas.height, alpha: [...data.filter((v, i) => i % 4 === 3)],
                opacity: getComputedStyle(canvas).opacity, previewLoaded: preview.complete && preview.naturalWidth,
                sameBox: JSON.stringify(canvas.getBoundingClientRect()) === JSON.stringify(preview.getBoundingClientRect())};
    """)
    heat = expected["explanation"]["heatmap"]
    assert (painted["width"], painted["height"]) == (heat["width"], heat["height"])
    values = [value for row in heat["values"] for value in row]
    for value, alpha in zip(values, painted["alpha"]):
        assert alpha == (0 if value <= 0.15 else 255 if value >= 0.6 else pytest.approx(255 * (value - 0.15) / 0.45, abs=1))
    ranked = sorted(zip(values, painted["alpha"]))
    assert all(a <= b for (_, a), (_, b) in zip(ranked, ranked[1:]))  # more influence, never more transparent
    assert painted["previewLoaded"] == 32 and painted["sameBox"]
    assert painted["opacity"] == "0.6"
    slider = browser.find_element(By.ID, "heatmap-opacity")
    slider.send_keys(Keys.END)
    _wait(browser, _js("getComputedStyle(document.getElementById('heatmap-canvas')).opacity === '1'"),
          "the opacity slider did not change the heatmap")
    assert _text(browser, "heatmap-opacity-value") == "100%"

    # Side by side: the original next to the server's overlay image, decoded by the browser.
    browser.find_element(By.ID, "view-side").click()
    assert _visible(browser, "side-view") and not _visible(browser, "overlay-view")
    overlay = browser.execute_script("const img = document.getElementById('side-overlay');"
                                     "return {src: img.src.slice(0, 23), width: img.naturalWidth};")
    assert overlay["src"] == "data:image/jpeg;base64," and overlay["width"] > 0

    # The timings are for developers: in "Technical details", closed until opened.
    assert not _visible(browser, "timing")
    browser.find_element(By.CSS_SELECTOR, "#timing-block summary").click()
    timing = browser.find_element(By.ID, "timing").text
    assert "Round trip" in timing and "ms" in timing
    _wait(browser, _js(f"document.getElementById('announcer').textContent.includes({json.dumps(image.name)})"),
          "the result was not announced")
    assert not _visible(browser, "result-error")


def test_a_photo_upload_names_the_photo_models_and_paints_the_heatmap_over_the_whole_image(server, browser):
    photo = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "photo_val_sample" / "REAL").glob("*.jpg"))[0]
    status, expected = server.request("POST", "/api/predict", photo.read_bytes(), "image/jpeg")
    assert status == 200 and expected["profile"] == "photo"
    _open(browser, server.base)
    _upload(browser, photo)
    _wait_all_settled(browser, 1)
    assert f"photo models, {expected['tiles']} tiles" in _text(browser, "result-facts")
    size = browser.execute_script("const c = document.getElementById('heatmap-canvas'); return [c.width, c.height];")
    assert size == [expected["explanation"]["heatmap"]["width"], expected["explanation"]["heatmap"]["height"]]
    # The tiles the photo pair scored are outlined over the preview, in the image's own pixels.
    grid = browser.execute_script("""const grid = document.getElementById('tile-grid');
        return {shown: !grid.hidden, viewBox: grid.getAttribute('viewBox'),
                rects: [...grid.querySelectorAll('rect')].map((r) => ['x', 'y', 'width', 'height'].map(
                    (name) => Number(r.getAttribute(name))))};""")
    assert grid["shown"] and grid["viewBox"] == f"0 0 {expected['input']['width']} {expected['input']['height']}"
    assert grid["rects"] == expected["explanation"]["heatmap"]["tiles"]
    assert f"the {expected['tiles']} tiles" in _text(browser, "explanation-caption")


def test_a_file_that_declares_an_ai_source_says_so_in_the_headline_and_the_provenance_panel(server, browser,
                                                                                             tmp_path):
    from tests import c2pa_signing, images

    signed = tmp_path / "generated.jpg"
    signed.write_bytes(c2pa_signing.ai_created_jpeg(images.jpeg(160, 120)))
    _open(browser, server.base)
    _upload(browser, signed)
    _wait_all_settled(browser, 1)
    assert "as the file itself declares" in _text(browser, "verdict-title")
    assert _visible(browser, "provenance-block")
    panel = _text(browser, "provenance")
    assert "made by an AI generator, in signed Content Credentials (C2PA)" in panel
    assert "Test Diffusion 1.0" in panel and "the signature and hashes hold" in panel
    assert "takes it at its word" in _text(browser, "provenance-note")


def test_a_file_without_metadata_is_not_called_evidence_of_anything(server, browser, cifake_test_sample):
    _open(browser, server.base)
    _upload(browser, _first(cifake_test_sample, "REAL"))
    _wait_all_settled(browser, 1)
    assert "nothing about its origin" in _text(browser, "provenance")
    assert "not evidence either way" in _text(browser, "provenance-note")


def test_dropped_files_are_queued_analysed_two_at_a_time_and_selectable(server, browser, cifake_test_sample):
    from selenium.webdriver.common.by import By

    fake, real = _first(cifake_test_sample, "FAKE"), _first(cifake_test_sample, "REAL")
    third = sorted((cifake_test_sample / "FAKE").glob("*.jpg"))[1]
    _open(browser, server.base)
    # Record every state the list and the detail panel pass through, to see the queue and the analysing state.
    browser.execute_script("""
        window.seen = [];
        new MutationObserver(() => window.seen.push({
            statuses: [...document.querySelectorAll('#queue-list li')].map((li) => li.dataset.status).join(','),
            analysing: !document.getElementById('analysing-overlay').hidden,
        })).observe(document.getElementById('main'), {attributes: true, subtree: true, childList: true});
    """)
    dropped = _drop_files(browser, [(fake.name, fake.read_bytes(), "image/jpeg"),
                                    (real.name, real.read_bytes(), "image/jpeg"),
                                    (third.name, third.read_bytes(), "image/jpeg")])
    assert dropped == {"highlighted": True, "overAccepted": True, "highlightedAfterDrop": False}
    _wait_all_settled(browser, 3)
    seen = browser.execute_script("return window.seen;")
    # Two small images at a time (issue #15: so that one slow upload does not hold back the rest), in the order they
    # came, the third waiting; the first is shown, as busy.
    assert {"statuses": "analysing,analysing,queued", "analysing": True} in seen
    assert not any(state["statuses"].count("analysing") > 2 for state in seen)
    assert any(state["statuses"].startswith("done,") and not state["analysing"] for state in seen)

    rows = browser.find_elements(By.CSS_SELECTOR, "#queue-list li")
    assert [row.text.splitlines()[0] for row in rows] == [fake.name, real.name, third.name]
    assert all(row.get_attribute("data-status") == "done" for row in rows)
    assert _text(browser, "result-heading") == fake.name  # the first of the drop is shown
    assert browser.find_element(By.CSS_SELECTOR, "#queue-list li button[aria-current='true']").text.startswith(
        fake.name)

    rows[1].find_element(By.TAG_NAME, "button").click()
    assert _text(browser, "result-heading") == real.name
    _, expected = server.request("POST", "/api/predict", real.read_bytes(), "image/jpeg")
    assert _own_percent(expected["verdict"]) in _text(browser, "verdict-detail")


def test_drop_zone_is_reached_by_tab_shows_focus_and_opens_the_chooser_by_keyboard(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, server.base)
    # A file chooser cannot be seen headless, so count the clicks that would open it.
    browser.execute_script("window.chooserOpened = 0; document.getElementById('file-input')"
                           ".addEventListener('click', (e) => { e.preventDefault(); window.chooserOpened += 1; });")
    # Tab order: skip link, theme toggle, drop zone.
    ActionChains(browser).send_keys(Keys.TAB, Keys.TAB, Keys.TAB).perform()
    assert browser.execute_script("return document.activeElement.id;") == "drop-zone"
    outline = browser.execute_script("const s = getComputedStyle(document.activeElement);"
                                     "return [s.outlineStyle, parseFloat(s.outlineWidth)];")
    assert outline[0] != "none" and outline[1] >= 2, "no visible focus ring on the drop zone"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    ActionChains(browser).send_keys(Keys.SPACE).perform()
    browser.find_element(By.ID, "drop-zone").click()
    assert browser.execute_script("return window.chooserOpened;") == 3
    assert browser.execute_script("return window.scrollY;") == 0  # Space did not scroll the page


def test_theme_follows_the_os_until_toggled_and_the_choice_survives_a_reload(server, browser):
    from selenium.webdriver.common.by import By

    def is_dark() -> bool:
        return browser.execute_script("return document.documentElement.classList.contains('dark');")

    browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    _open(browser, server.base)
    assert is_dark()
    toggle = browser.find_element(By.ID, "theme-toggle")
    assert toggle.get_attribute("aria-pressed") == "true"

    toggle.click()
    assert not is_dark() and toggle.get_attribute("aria-pressed") == "false"
    assert browser.execute_script("return localStorage.getItem('theme');") == "light"
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor;")

    browser.refresh()
    # The inline script in <head> has set the theme before the first paint, so it holds as soon as the DOM exists.
    assert not is_dark()
    assert browser.execute_script("return getComputedStyle(document.body).backgroundColor;") == background
    browser.find_element(By.ID, "theme-toggle").click()
    browser.refresh()
    assert is_dark() and browser.execute_script("return localStorage.getItem('theme');") == "dark"
    assert browser.execute_script("return getComputedStyle(document.body).backgroundColor;") != background


def test_files_the_server_cannot_use_get_plain_inline_errors(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image at all\n")
    # Passes the page's own checks (a PNG signature) so the server's 400 answer is what gets shown.
    broken_png = tmp_path / "broken.png"
    broken_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    _open(browser, server.base)
    _upload(browser, text_file, broken_png)
    _wait_all_settled(browser, 2)

    rows = browser.find_elements(By.CSS_SELECTOR, "#queue-list li")
    assert [row.get_attribute("data-status") for row in rows] == ["error", "error"]
    # Refused files read "Rejected", unlike a lost connection ("No connection", tests/frontend/test_page_behaviour.py).
    assert "Rejected" in rows[0].text and "Rejected" in rows[1].text

    rows[0].find_element(By.TAG_NAME, "button").click()
    assert _visible(browser, "result-error") and not _visible(browser, "verdict")
    assert _text(browser, "result-error-title") == "This file is not an image the detector can read"
    assert "JPEG" in _text(browser, "result-error-detail")
    assert not _visible(browser, "retry-button")  # the same file would fail again

    rows[1].find_element(By.TAG_NAME, "button").click()
    assert _text(browser, "result-error-title") == "The image could not be read"
    detail = _text(browser, "result-error-detail")
    assert "could not be decoded" in detail  # the server's own words, quoted
    for raw in ("{", "}", '"error"', "400"):
        assert raw not in detail and raw not in _text(browser, "result-error-title")


def test_the_page_never_requests_another_origin(server, browser, cifake_test_sample):
    _open(browser, server.base)
    _upload(browser, _first(cifake_test_sample, "REAL"))
    _wait_all_settled(browser, 1)
    _wait(browser, _js("document.querySelectorAll('#about-models article').length === 4"),
          "the about panel was not filled")
    urls = _requested_urls(browser)
    assert any(url.endswith("/api/predict") for url in urls)
    assert any(urlsplit(url).path.startswith("/assets/") and url.endswith("/app.css") for url in urls)
    origin = urlsplit(server.base)
    # Only URLs that reach a network count; data:, blob: and the browser's own chrome:// pages do not.
    strangers = [url for url in urls if urlsplit(url).scheme in ("http", "https", "ws", "wss", "ftp")
                 and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)]
    assert strangers == []


def test_a_server_whose_models_are_not_loaded_is_reported_in_words(server_without_models, browser,
                                                                   cifake_test_sample):
    _open(browser, server_without_models.base, ready_state="loading")
    assert _text(browser, "service-status-text") == "Not ready"
    _upload(browser, _first(cifake_test_sample, "FAKE"))
    _wait_all_settled(browser, 1)
    assert _text(browser, "result-error-title") == "The detector is not ready"
    assert _visible(browser, "retry-button")


def test_an_unreachable_api_is_reported_in_words(server, browser, cifake_test_sample):
    closed = f"http://127.0.0.1:{free_port()}"
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                            {"source": f"window.DETECTOR_API_BASE = {json.dumps(closed)};"})
    _open(browser, server.base, ready_state="down")
    _upload(browser, _first(cifake_test_sample, "FAKE"))
    _wait_all_settled(browser, 1)
    assert _text(browser, "result-error-title") == "Could not reach the detector service"
    assert _visible(browser, "retry-button")


def test_the_page_can_use_an_api_on_another_origin(server, server_without_models, browser, cifake_test_sample):
    # The page comes from one server, the predictions from another (CORS): the api-base setting at work.
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                            {"source": f"window.DETECTOR_API_BASE = {json.dumps(server.base + '/')};"})
    _open(browser, server_without_models.base)
    _upload(browser, _first(cifake_test_sample, "REAL"))
    _wait_all_settled(browser, 1)
    assert browser.execute_script("return document.getElementById('verdict').dataset.label;") in (
        "REAL", "FAKE", "UNCERTAIN")
    assert browser.execute_script("return document.getElementById('api-docs-link').href;") == (
        server.base + "/api/openapi.json")


def test_text_contrast_meets_wcag_aa_in_both_themes_for_every_verdict_tone(server, browser, cifake_test_sample,
                                                                           tmp_path):
    from selenium.webdriver.common.by import By

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("text")
    _open(browser, server.base)
    _upload(browser, _first(cifake_test_sample, "FAKE"), not_an_image)
    _wait_all_settled(browser, 2)
    rows = browser.find_elements(By.CSS_SELECTOR, "#queue-list li .queue-row")  # not the rows' remove buttons
    toggle = browser.find_element(By.ID, "theme-toggle")
    for theme in ("light", "dark"):
        if (theme == "dark") != browser.execute_script("return document.documentElement.classList.contains('dark');"):
            toggle.click()
            time.sleep(0.5)  # let colour transitions finish
        rows[0].click()
        # The tiny test models give whatever verdict they give; paint every tone in turn to judge them all.
        for tone in ("fake", "real", "uncertain"):
            browser.execute_script("document.getElementById('verdict').dataset.tone = arguments[0];"
                                   "for (const card of document.querySelectorAll('.model-card')) "
                                   "card.dataset.tone = arguments[0] === 'fake' ? 'fake' : 'real';"
                                   "for (const badge of document.querySelectorAll('.badge:not([data-tone=error])')) "
                                   "badge.dataset.tone = arguments[0];", tone)
            failures = browser.execute_script(CONTRAST_SCRIPT)
            assert failures == [], f"below WCAG AA in the {theme} theme, {tone} verdict: {failures}"
        rows[1].click()  # the error state
        failures = browser.execute_script(CONTRAST_SCRIPT)
        assert failures == [], f"below WCAG AA in the {theme} theme, error state: {failures}"


def test_screenshots_of_both_themes_with_the_shipped_weights(browser, cifake_test_sample, tmp_path):
    """Runs the shipped models (saved_models/) and writes {light,dark}-{desktop,mobile}.png screenshots: a CIFAKE
    thumbnail and a photo (the AI sample) as a batch, the photo's result on the desktop, the thumbnail's at 390 px."""
    from selenium.webdriver.common.by import By

    missing = [str(SHIPPED_WEIGHTS_DIR / name) for name in ("cnn.pt", "efficientnet_b0.pt")
               if not (SHIPPED_WEIGHTS_DIR / name).exists()]
    if missing:
        pytest.fail(f"shipped weights missing: {', '.join(missing)} (train them with `make train-cnn` and "
                    "`make train-efficientnet`)", pytrace=False)
    live = LiveServer()  # None: the shipped weights
    try:
        live.wait_ready()
        # The clearest of a few CIFAKE fakes, so the pictures show a confident verdict with a telling heatmap.
        candidates = sorted((cifake_test_sample / "FAKE").glob("*.jpg"))[:12]
        answers = {path: live.request("POST", "/api/predict?explain=false", path.read_bytes(), "image/jpeg")[1]
                   for path in candidates}
        image = max(candidates, key=lambda path: answers[path]["verdict"]["p_fake"])
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
        _set_viewport(browser, 1280, 900, mobile=False)
        _open(browser, live.base)
        photo = PROJECT_ROOT / "frontend" / "assets" / "samples" / "photo-ai.jpg"
        _upload(browser, image, photo)
        _wait_all_settled(browser, 2)
        assert browser.execute_script("return document.getElementById('verdict').dataset.label;") == (
            answers[image]["verdict"]["label"])
        assert _visible(browser, "batch")
        rows = browser.find_elements(By.CSS_SELECTOR, "#queue-list li .queue-row")
        accuracy = browser.find_elements(By.CSS_SELECTOR, "#about-models dl[data-split='test'] dd")
        assert len(accuracy) == 6 and all(dd.text.strip() not in ("", "–") for dd in accuracy)

        screenshots = COMMITTED_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
        screenshots.mkdir(parents=True, exist_ok=True)
        for theme in ("light", "dark"):
            if (theme == "dark") != browser.execute_script(
                    "return document.documentElement.classList.contains('dark');"):
                browser.find_element(By.ID, "theme-toggle").click()
            browser.execute_script("document.activeElement.blur();")  # no focus ring in the pictures
            time.sleep(0.5)  # let colour transitions finish
            for name, (width, height, mobile) in {"desktop": (1280, 900, False), "mobile": (390, 844, True)}.items():
                _set_viewport(browser, width, height, mobile)
                rows[0 if mobile else 1].click()
                browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
                time.sleep(0.5)  # let the smooth scroll to the result end
                overflow = browser.execute_script(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
                assert overflow <= 0, f"the page scrolls sideways at {width} px ({theme})"
                (screenshots / f"{theme}-{name}.png").write_bytes(_full_page_png(browser))
    finally:
        live.stop()


# --- page weight and caching (issue #15) ---------------------------------------------------------------------------

PAGE_WEIGHT_LIMIT = 40_000  # bytes transferred on a first visit, headers included (issue #15: <= 40 KB, aim 30)


@pytest.fixture(scope="module")
def production_server(tiny_weights_dir):
    """`make run`'s server (granian + backend/asgi.py), one worker."""
    live = LiveServer(tiny_weights_dir, {"DETECTOR_WORKERS": "1"}, production=True)
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


def _page_transfers(driver) -> list[dict]:
    """The document's and every static asset's Resource Timing entry (API calls are data, not page weight)."""
    return driver.execute_script("""
        return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
            .filter((e) => !new URL(e.name).pathname.startsWith('/api/'))
            .map((e) => ({url: e.name, transferSize: e.transferSize, encodedBodySize: e.encodedBodySize,
                          decodedBodySize: e.decodedBodySize, status: e.responseStatus, type: e.entryType}));
    """)


@pytest.mark.parametrize("which", ["dev", "production"])
def test_first_visit_is_small_and_compressed_and_a_second_visit_comes_from_the_cache(which, request, browser):
    live = request.getfixturevalue("server" if which == "dev" else "production_server")
    _open(browser, live.base)
    _wait(browser, _js("document.readyState === 'complete'"), "the page never finished loading")
    first = _page_transfers(browser)
    assert len(first) >= 10, first  # the document, the stylesheet and the modules
    total = sum(entry["transferSize"] for entry in first)
    assert total <= PAGE_WEIGHT_LIMIT, f"first visit transferred {total:,} bytes: {first}"
    for entry in first:
        if entry["url"].endswith((".js", ".css", "/")):
            assert entry["encodedBodySize"] < entry["decodedBodySize"], f"sent uncompressed: {entry}"

    # A second visit (a new navigation, not a reload): the document is revalidated (304, no body) and every asset
    # is taken from the browser's cache without asking the server.
    browser.get("about:blank")
    _open(browser, live.base)
    _wait(browser, _js("document.readyState === 'complete'"), "the page never finished loading")
    second = _page_transfers(browser)
    document = next(entry for entry in second if entry["type"] == "navigation")
    # A 304 carries headers only; the body Chrome reports is the cached one.
    assert 0 < document["transferSize"] < min(1000, document["encodedBodySize"]), document
    fetched = [entry for entry in second if entry["type"] == "resource" and entry["transferSize"] > 0]
    assert fetched == [], f"assets fetched again on a second visit: {fetched}"


def test_a_sample_is_one_click_away_and_runs_through_the_upload_path(server, browser):
    from selenium.webdriver.common.by import By

    _open(browser, server.base)
    _wait(browser, _js("document.querySelector('#samples button').title.includes('Licence')"),
          "the sample buttons were not wired up")
    buttons = browser.find_elements(By.CSS_SELECTOR, "#samples button[data-sample]")
    assert [button.get_attribute("data-sample") for button in buttons] == [
        "cifake-real.jpg", "cifake-ai.jpg", "photo-real.jpg", "photo-ai.jpg"]
    assert not any(url.endswith(".jpg") for url in _requested_urls(browser))  # images only on a click

    sample = PROJECT_ROOT / "frontend" / "assets" / "samples" / "photo-ai.jpg"
    _, expected = server.request("POST", "/api/predict", sample.read_bytes(), "image/jpeg")
    buttons[3].click()
    _wait_all_settled(browser, 1)
    assert _text(browser, "result-heading") == "sample-photo-ai.jpg"
    label = "UNCERTAIN" if expected["verdict"]["uncertain"] else expected["verdict"]["label"]
    assert browser.execute_script("return document.getElementById('verdict').dataset.label;") == label
    assert f"photo models, {expected['tiles']} tiles" in _text(browser, "result-facts")
    assert "CC BY-SA 4.0" in _text(browser, "samples")  # the credits travel with the samples
