"""The benchmarks' pure helpers: percentiles, the multipart body, /proc readings, the CLI output check.

No server starts here; the benchmarks themselves are run by hand (`make bench`) and never assert timings.
"""
from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from werkzeug.formparser import parse_form_data
from werkzeug.test import create_environ

from bench.cli_batch import check_jsonl, split_passthrough
from bench.common import (child_pids, cpu_seconds, latency_summary_ms, markdown_table, parse_proc_stat_cpu_ticks,
                          parse_proc_status, percentile, proc_status, process_tree)
from bench.load_test import build_multipart


def test_percentile_matches_numpy_linear_interpolation():
    rng = random.Random(0)
    for size in (1, 2, 3, 10, 101, 1000):
        values = [rng.expovariate(1.0) for _ in range(size)]
        for q in (0, 1, 50, 90, 99, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_none_and_bad_q_is_refused():
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds():
    summary = latency_summary_ms([0.001, 0.002, 0.003, 0.004])
    assert summary["count"] == 4 and summary["min"] == 1.0 and summary["max"] == 4.0
    assert summary["p50"] == 2.5 and summary["mean"] == 2.5
    assert latency_summary_ms([])["p50"] is None


def test_multipart_body_is_read_back_by_werkzeug():
    data = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"
    body, content_type = build_multipart("image", "photo.jpg", "image/jpeg", data)
    environ = create_environ(method="POST", input_stream=io.BytesIO(body), content_type=content_type,
                             content_length=len(body))
    _, form, files = parse_form_data(environ)
    upload = files["image"]
    assert upload.filename == "photo.jpg" and upload.mimetype == "image/jpeg"
    assert upload.read() == data
    assert not form


def test_multipart_refuses_a_boundary_found_in_the_data():
    with pytest.raises(ValueError):
        build_multipart("image", "a.png", "image/png", b"xx--fixed--yy", boundary="--fixed--")


def test_proc_status_parsing():
    text = "Name:\tpython\nVmPeak:\t  200 kB\nVmHWM:\t   150 kB\nVmRSS:\t   120 kB\nThreads:\t3\nSigQ:\t0/1\n"
    assert parse_proc_status(text) == {"VmPeak": 200, "VmHWM": 150, "VmRSS": 120, "Threads": 3}


def test_proc_status_of_this_process():
    status = proc_status(os.getpid())
    assert status["VmRSS"] > 0 and status["VmHWM"] >= status["VmRSS"] and status["Threads"] >= 1
    assert proc_status(2 ** 22 + 12345) == {}  # above pid_max's default: no such process


def test_cpu_ticks_survive_a_command_name_with_spaces_and_parentheses():
    fields = " ".join(str(n) for n in range(3, 53))  # fields 3.. after the name; utime is 14, stime is 15
    line = f"4242 (a (weird) name) {fields.replace('3', 'S', 1)}"
    assert parse_proc_stat_cpu_ticks(line) == 14 + 15
    assert cpu_seconds(os.getpid()) >= 0


def test_children_of_this_process_are_found():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in child_pids(os.getpid())
        assert child.pid in process_tree(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_jsonl_check_accepts_a_complete_output():
    lines = [json.dumps({"path": f"d/{i}.jpg", "p_fake": 0.5, "verdict": "FAKE"}) for i in range(3)]
    result = check_jsonl(lines, {f"d/{i}.jpg" for i in range(3)})
    assert result["ok"] and result["rows"] == 3 and result["problems"] == []


def test_jsonl_check_reports_missing_rows_errors_and_garbage():
    lines = [json.dumps({"path": "d/0.jpg", "p_fake": 0.1}), json.dumps({"path": "d/1.jpg", "error": "corrupt"}),
             "{not json", json.dumps({"path": "d/0.jpg", "p_fake": 0.1})]
    result = check_jsonl(lines, {"d/0.jpg", "d/1.jpg", "d/2.jpg"})
    assert not result["ok"]
    assert result["unparsable"] == 1 and result["errors"] == 1
    assert any("more than once" in p for p in result["problems"])
    assert any("1 images have no row" in p for p in result["problems"])


def test_arguments_after_a_double_dash_go_to_the_cli():
    assert split_passthrough(["data", "--repeat", "2", "--", "--threads", "2"]) == (["data", "--repeat", "2"],
                                                                                   ["--threads", "2"])
    assert split_passthrough(["data"]) == (["data"], [])


def test_markdown_table_shows_none_as_a_dash():
    assert markdown_table(["a", "b"], [[1, None]]) == "| a | b |\n| --- | --- |\n| 1 | – |"
