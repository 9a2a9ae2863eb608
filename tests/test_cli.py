"""`python -m backend.cli predict`: files and folders in, one JSONL/CSV row per image out."""
import csv
import json

from backend.cli import main
from tests import images


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
        main(["predict", str(cifake_test_sample), "--weights-dir", str(tiny_weights_dir), "--output", str(output),
              "--batch-size", "7", "--threads", "1", "--workers", workers, "--quiet"])
        outputs.append([json.loads(line) for line in output.read_text().splitlines()])
    assert len(outputs[0]) == 200 and outputs[0] == outputs[1]
