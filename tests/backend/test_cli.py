"""`python -m backend.cli predict`: files and folders in, one JSONL/CSV row per image out."""
import csv
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from backend.cli import main, score
from tests import images
from tests.conftest import FIXTURES, PROJECT_ROOT


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """main() sets torch's process-wide thread count; later tests must not inherit --threads 1."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_scores_a_folder_to_jsonl_in_sorted_order(tiny_weights_dir, cifake_test_sample, tmp_path):
    output = tmp_path / "scores.jsonl"
    code = main(["predict", str(cifake_test_sample / "FAKE"), "--weights-dir", str(tiny_weights_dir),
                 "--output", str(output), "--batch-size", "32", "--quiet"])
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert code == 0 and len(rows) == 100
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    for row in rows:
        assert set(row) >= {"p_fake_cnn", "p_fake_efficientnet", "p_fake", "verdict", "uncertain"}
        assert abs(row["p_fake"] - (row["p_fake_cnn"] + row["p_fake_efficientnet"]) / 2) < 1e-5


def test_a_mixed_folder_names_the_pair_that_answered_each_image(tiny_weights_dir, tmp_path):
    photos = FIXTURES / "photo_val_sample" / "FAKE"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_thumb.jpg").write_bytes(images.jpeg(32, 32))
    (tmp_path / "in" / "b_photo.jpg").write_bytes(sorted(photos.glob("*.jpg"))[0].read_bytes())
    output = tmp_path / "scores.csv"
    assert main(["predict", str(tmp_path / "in"), "--format", "csv", "--weights-dir", str(tiny_weights_dir),
                 "--output", str(output), "--quiet"]) == 0
    rows = list(csv.DictReader(open(output)))
    assert [(r["profile"], r["tiles"]) for r in rows] == [("thumbnail", "1"), ("photo", "16")]
    assert all(r["p_fake_cnn"] and r["p_fake_efficientnet"] for r in rows)


def test_csv_output_keeps_going_past_a_bad_file(tiny_weights_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(images.jpeg())
    (tmp_path / "in" / "b.jpg").write_bytes(images.TEXT)
    (tmp_path / "in" / "c.png").write_bytes(images.png())
    output = tmp_path / "scores.csv"
    code = main(["predict", str(tmp_path / "in"), "--format", "csv", "--weights-dir", str(tiny_weights_dir),
                 "--output", str(output), "--quiet"])
    rows = list(csv.DictReader(open(output)))
    assert code == 1
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == ["a.jpg", "b.jpg", "c.png"]
    assert rows[1]["error"] and not rows[1]["verdict"]
    assert rows[0]["verdict"] in {"REAL", "FAKE"} and not rows[0]["error"]


def test_batched_scores_equal_one_at_a_time_scores(tiny_weights_dir, cifake_test_sample, tmp_path):
    outputs = []
    for batch in ("1", "64"):
        output = tmp_path / f"b{batch}.jsonl"
        main(["predict", str(cifake_test_sample / "REAL"), "--weights-dir", str(tiny_weights_dir), "--output",
              str(output), "--batch-size", batch, "--quiet"])
        outputs.append([json.loads(line) for line in output.read_text().splitlines()])
    for one, many in zip(*outputs):
        assert abs(one["p_fake"] - many["p_fake"]) < 1e-5 and one["verdict"] == many["verdict"]


def test_missing_weights_exit_2_with_a_message(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--weights-dir", str(tmp_path / "none"), "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err


def test_parallel_workers_give_the_same_rows_in_the_same_order(tiny_weights_dir, cifake_test_sample, tmp_path):
    outputs = []
    for workers in ("1", "3"):
        output = tmp_path / f"w{workers}.jsonl"
        # --threads 1 both times: every runtime call is single-threaded, so the scores match to the last bit
        code = main(["predict", str(cifake_test_sample), "--weights-dir", str(tiny_weights_dir), "--output",
                     str(output), "--batch-size", "7", "--threads", "1", "--workers", workers, "--quiet"])
        assert code == 0
        outputs.append([json.loads(line) for line in output.read_text().splitlines()])
    assert len(outputs[0]) == 200 and all("p_fake" in row for row in outputs[0])
    assert outputs[0] == outputs[1]


def _counting_predict(monkeypatch, on_call):
    """Patch the scorer's call to count calls and run `on_call(n)` before scoring the n-th chunk."""
    from utils.inference.scorer import Scorer

    calls = []
    real_call = Scorer.__call__

    def call(self, *args, **kwargs):
        calls.append(1)
        on_call(len(calls))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(Scorer, "__call__", call)
    return calls


def test_a_failing_chunk_ends_the_run_without_scoring_the_rest(tiny_weights_dir, cifake_test_sample, monkeypatch):
    def fail_second(n):
        if n == 2:
            raise RuntimeError("chunk failed")

    calls = _counting_predict(monkeypatch, fail_second)
    with pytest.raises(RuntimeError, match="chunk failed"):
        main(["predict", str(cifake_test_sample), "--weights-dir", str(tiny_weights_dir), "--output", os.devnull,
              "--batch-size", "5", "--threads", "1", "--workers", "1", "--quiet"])
    assert len(calls) <= 3, f"{len(calls)} of 40 chunks were scored"


def test_stopping_early_cancels_the_chunks_not_started(tiny_weights_dir, cifake_test_sample, monkeypatch):
    from backend.detector import Detector

    release = threading.Event()
    calls = _counting_predict(monkeypatch, lambda n: release.wait(5) if n == 2 else None)
    detector = Detector.from_weights_dir(tiny_weights_dir, {"cnn": "cnn.pt", "efficientnet": "efficientnet_b0.pt"},
                                         runtime="torch", threads=1, explanations=False)
    paths = sorted((cifake_test_sample / "REAL").glob("*.jpg"))[:20]
    rows = score(paths, detector, batch_size=5, max_pixels=10**8, progress=False, workers=1)
    next(rows)  # chunk 1 done; chunk 2 goes to the worker (and is held there), chunk 3 waits in the queue
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    threading.Timer(0.3, release.set).start()
    rows.close()
    assert len(calls) == 2, "the queued chunk must be cancelled, not scored"


@pytest.mark.parametrize("flag", ["--workers", "--threads"])
def test_worker_and_thread_counts_below_one_are_usage_errors(flag, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(tmp_path), flag, "0"])
    assert exit_info.value.code == 2


def test_the_command_writes_every_row_and_its_exit_status_before_it_skips_teardown(tiny_weights_dir, tmp_path):
    """`python -m backend.cli` ends with os._exit; rows, the summary on stderr and the status must all survive."""
    (tmp_path / "in").mkdir()
    for index in range(3):
        (tmp_path / "in" / f"{index}.jpg").write_bytes(images.jpeg())
    (tmp_path / "in" / "broken.jpg").write_bytes(images.TEXT)
    output = tmp_path / "scores.jsonl"
    done = subprocess.run([sys.executable, "-m", "backend.cli", "predict", str(tmp_path / "in"), "--weights-dir",
                           str(tiny_weights_dir), "--output", str(output), "--quiet"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert done.returncode == 1
    assert len(rows) == 4 and sum("error" in row for row in rows) == 1
    assert "1 of 4 files could not be scored" in done.stderr
