"""What a reader can do with results (issue #15): a batch table with a summary, sorting and CSV / JSON export;
removing one image; results that survive a reload; one image's report (JSON with its sha256, and the heatmap over
the image as a PNG). Headless Chromium against the scripted stand-in service (tests/frontend/scripted_api.py)."""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from tests.frontend import scripted_api
from tests.frontend.test_page_behaviour import _badge, _png, _row, api  # noqa: F401 (fixture)
from tests.frontend.test_page_browser import (  # noqa: F401 (fixture)
    _js, _open, _text, _upload, _visible, _wait, _wait_all_settled, browser,
)

pytestmark = pytest.mark.slow

ANSWERS = {
    "ai-1.png": scripted_api.result(cnn=0.95, efficientnet=0.97, sha256="11" * 32),
    "ai-2.png": scripted_api.result(cnn=0.80, efficientnet=0.90, sha256="22" * 32),
    "real.png": scripted_api.result(cnn=0.05, efficientnet=0.02, sha256="33" * 32),
    "blank.png": scripted_api.result(cnn=0.30, efficientnet=0.10, sha256="44" * 32,
                                     domain_note="This image is blank or almost uniform."),
}


def _downloads(browser, folder: Path) -> None:
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})


def _downloaded(folder: Path, name: str) -> Path:
    path = folder / name
    deadline = time.time() + 20
    while time.time() < deadline:
        if path.exists() and path.stat().st_size and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {sorted(p.name for p in folder.iterdir())}")


def _table(browser) -> list[list[str]]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#batch-table tbody tr')]"
        ".map((tr) => [...tr.children].map((cell) => cell.textContent));")


def _upload_batch(api, browser, tmp_path) -> None:  # noqa: F811
    api.answer = lambda name: (200, ANSWERS[name])
    _open(browser, api.base)
    _upload(browser, *[_png(tmp_path / name) for name in ANSWERS])
    _wait_all_settled(browser, len(ANSWERS))


def test_the_batch_table_summarises_sorts_and_exports(api, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    _downloads(browser, downloads)
    _upload_batch(api, browser, tmp_path)
    assert _visible(browser, "batch")
    assert _text(browser, "batch-summary") == "2 AI, 1 real, 1 unreliable"
    rows = _table(browser)
    assert [row[0] for row in rows] == ["ai-1.png", "ai-2.png", "blank.png", "real.png"]  # by file name first
    assert rows[0] == ["ai-1.png", "AI-generated · 96%", "95.0%", "97.0%", "thumbnail", "none declared"]
    assert rows[2][1] == "Unreliable"

    header = browser.find_element(By.CSS_SELECTOR, "#batch-table [data-sort='cnn']")
    assert "Custom CNN" in header.text
    header.click()
    assert [row[0] for row in _table(browser)] == ["real.png", "blank.png", "ai-2.png", "ai-1.png"]
    assert browser.execute_script("return document.activeElement.dataset.sort;") == "cnn"  # focus stays
    sorted_header = browser.find_element(By.CSS_SELECTOR, "#batch-table th[aria-sort]")
    assert sorted_header.get_attribute("aria-sort") == "ascending" and "Custom CNN" in sorted_header.text
    browser.find_element(By.CSS_SELECTOR, "#batch-table [data-sort='cnn']").click()
    assert [row[0] for row in _table(browser)] == ["ai-1.png", "ai-2.png", "blank.png", "real.png"]
    assert browser.find_element(By.CSS_SELECTOR, "#batch-table th[aria-sort]").get_attribute(
        "aria-sort") == "descending"

    # A file name in the table selects that image.
    browser.find_element(By.CSS_SELECTOR, "#batch-table tbody tr:last-child th button").click()
    assert _text(browser, "result-heading") == "real.png"

    browser.find_element(By.ID, "export-csv").click()
    table = list(csv.DictReader(io.StringIO(_downloaded(downloads, "results.csv").read_text())))
    assert [row["file"] for row in table] == list(ANSWERS)  # in the order they were added
    assert table[0]["state"] == "fake" and float(table[0]["cnn_p_fake"]) == 0.95
    assert float(table[0]["efficientnet_p_fake"]) == 0.97 and table[0]["sha256"] == "11" * 32
    assert table[3]["state"] == "unreliable" and table[3]["domain_note"].startswith("This image is blank")

    browser.find_element(By.ID, "export-json").click()
    exported = json.loads(_downloaded(downloads, "results.json").read_text())
    assert exported["summary"] == "2 AI, 1 real, 1 unreliable"
    first = exported["images"][0]
    assert first["file"] == "ai-1.png" and first["sha256"] == "11" * 32 and first["headline"] == "Likely AI-generated"
    assert first["result"]["models"][0]["p_fake"] == 0.95
    assert "image" not in first["result"]["explanation"]  # no overlay JPEGs in a batch export


def test_a_csv_export_does_not_let_a_file_name_run_as_a_formula(api, browser, tmp_path):  # noqa: F811
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    _downloads(browser, downloads)
    api.answer = lambda name: (200, scripted_api.result())
    _open(browser, api.base)
    _upload(browser, _png(tmp_path / "=HYPERLINK(1).png"), _png(tmp_path / "plain, with comma.png"))
    _wait_all_settled(browser, 2)
    browser.find_element("id", "export-csv").click()
    rows = list(csv.DictReader(io.StringIO(_downloaded(downloads, "results.csv").read_text())))
    assert [row["file"] for row in rows] == ["'=HYPERLINK(1).png", "plain, with comma.png"]


def test_one_image_can_be_removed(api, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    _upload_batch(api, browser, tmp_path)
    _row(browser, 0).find_element(By.CSS_SELECTOR, "button.row-remove").click()
    names = browser.execute_script(
        "return [...document.querySelectorAll('#queue-list li')].map((li) => li.querySelector('.queue-row').title);")
    assert names == ["ai-2.png", "real.png", "blank.png"]
    assert _text(browser, "result-heading") == "ai-2.png"  # the selection moved to the next image
    assert browser.execute_script("return document.activeElement.getAttribute('aria-label');") == "Remove ai-2.png"
    assert _text(browser, "batch-summary") == "1 AI, 1 real, 1 unreliable"
    assert _text(browser, "queue-count") == "(3)"


def test_results_survive_a_reload_of_the_tab(api, browser, tmp_path):  # noqa: F811
    _upload_batch(api, browser, tmp_path)
    _wait(browser, _js("JSON.parse(sessionStorage.getItem('detector-results') || '[]').length === 4"),
          "the results were not stored")
    requests = len(api.requests)
    browser.refresh()
    _wait_all_settled(browser, 4)
    assert [_badge(browser, index) for index in range(4)] == [
        "AI-generated · 96%", "AI-generated · 85%", "Real photo · 97%", "Unreliable"]
    assert _text(browser, "verdict-title") == "Likely AI-generated"
    assert _text(browser, "result-heading") == "ai-1.png"
    assert browser.execute_script("return document.getElementById('preview-image').naturalWidth;") == 32
    assert _text(browser, "batch-summary") == "2 AI, 1 real, 1 unreliable"
    assert not any(entry.startswith("POST") for entry in api.requests[requests:])  # nothing sent again


def test_one_images_report_is_a_json_with_its_sha256_and_a_png_of_the_heatmap_over_it(api, browser, tmp_path):  # noqa: F811
    from PIL import Image
    from selenium.webdriver.common.by import By

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    _downloads(browser, downloads)
    heat = [[1.0 if x < 4 else 0.0 for x in range(8)] for _ in range(8)]  # the left half
    api.answer = lambda name: (200, scripted_api.result(heatmap=heat, sha256="ab" * 32))
    _open(browser, api.base)
    _png(tmp_path / "picture.png", colour=(0, 0, 0, 255))
    _upload(browser, tmp_path / "picture.png")
    _wait_all_settled(browser, 1)
    assert _visible(browser, "report-block")

    browser.find_element(By.ID, "report-json").click()
    report = json.loads(_downloaded(downloads, "picture-report.json").read_text())
    assert report["file"] == "picture.png" and report["sha256"] == "ab" * 32
    assert report["headline"] == "Likely AI-generated" and report["state"] == "fake"
    assert report["result"]["explanation"]["heatmap"]["values"] == heat

    browser.find_element(By.ID, "report-png").click()
    with Image.open(_downloaded(downloads, "picture-heatmap.png")) as image:
        assert image.format == "PNG" and image.size == (256, 256)  # a 32 px image, enlarged by whole pixels
        rgb = image.convert("RGB")
        left, right = rgb.getpixel((16, 128)), rgb.getpixel((240, 128))
    assert right == (0, 0, 0)  # no influence: the black image itself
    assert left != (0, 0, 0) and left[0] > 50  # most influence: the heatmap's dark red, at the slider's opacity
