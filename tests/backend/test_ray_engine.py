"""`backend.cli predict --engine ray`: a real local Ray (no mocks) gives the local engine's rows, in its order."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, PROJECT_ROOT

pytest.importorskip("ray")


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend.cli", "predict", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Thumbnails and photos in two sub-folders, and a file that is not an image."""
    root = tmp_path_factory.mktemp("mixed")
    for kind in ("REAL", "FAKE"):
        (root / kind).mkdir()
        for path in sorted((FIXTURES / "cifake_test_sample" / kind).glob("*.jpg"))[:12]:
            shutil.copy(path, root / kind / path.name)
        for path in sorted((FIXTURES / "photo_val_sample" / kind).glob("*.jpg"))[:2]:
            shutil.copy(path, root / kind / f"photo_{path.name}")
    (root / "REAL" / "broken.jpg").write_bytes(b"not an image at all")
    return root


@pytest.fixture(scope="module")
def both_engines(mixed_folder):
    local = run_cli(str(mixed_folder), "--quiet", "--threads", "2")
    distributed = run_cli(str(mixed_folder), "--quiet", "--engine", "ray", "--workers", "2", "--threads", "2",
                          "--batch-size", "8")
    return local, distributed


def rows(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_both_engines_give_the_same_rows_in_input_order(both_engines):
    local, distributed = (rows(done) for done in both_engines)
    assert len(local) == len(distributed) == 29
    assert [row["path"] for row in distributed] == [row["path"] for row in local]
    assert {row["profile"] for row in local if "profile" in row} == {"thumbnail", "photo"}
    for ours, theirs in zip(local, distributed):
        assert ours.keys() == theirs.keys()
        for key, value in ours.items():
            if key.startswith("p_fake"):
                assert theirs[key] == pytest.approx(value, abs=1e-5)
            else:
                assert theirs[key] == value


def test_an_unreadable_file_gets_the_error_column_and_exit_status_1_in_both(both_engines):
    for done in both_engines:
        assert done.returncode == 1, done.stderr[-2000:]
        broken = [row for row in rows(done) if row["path"].endswith("broken.jpg")]
        assert broken == [{"path": broken[0]["path"], "error": broken[0]["error"]}]
        assert "not a supported image" in broken[0]["error"]
        assert "1 of 29 files could not be scored" in done.stderr


@pytest.mark.parametrize("address", ["not an address", "http://host:10001", "host:port"])
def test_a_malformed_address_is_refused_with_a_clear_error(address, mixed_folder):
    done = run_cli(str(mixed_folder), "--engine", "ray", "--address", address, timeout=60)
    assert done.returncode == 2 and "is not a Ray address" in done.stderr and "Traceback" not in done.stderr


def test_an_address_needs_the_ray_engine(mixed_folder):
    done = run_cli(str(mixed_folder), "--address", "auto", timeout=60)
    assert done.returncode == 2 and "--address needs --engine ray" in done.stderr


def test_neither_the_service_nor_the_local_engine_imports_ray():
    script = ("import sys; import backend, backend.app, backend.serve, backend.asgi, backend.cli; "
              "from backend import create_app; create_app({'load_in_background': False}); "
              "assert 'ray' not in sys.modules, 'ray was imported'")
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
