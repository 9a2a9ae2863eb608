"""The service as N stateless replicas: two production servers on loopback, a round-robin in front, same answers."""
from __future__ import annotations

import itertools

import pytest

from tests.conftest import FIXTURES
from tests.live_server import LiveServer


@pytest.fixture(scope="module")
def replicas(tiny_weights_dir):
    servers = [LiveServer(tiny_weights_dir, {"DETECTOR_WORKERS": "1"}, production=True) for _ in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def without_timing(body: dict) -> dict:
    return {key: value for key, value in body.items() if key != "timing_ms"}


def test_each_replica_reports_its_own_readiness(replicas):
    assert [server.request("GET", "/api/ready")[0] for server in replicas] == [200, 200]
    assert len({server.port for server in replicas}) == 2


def test_a_round_robin_over_replicas_gives_every_file_the_same_answer(replicas):
    files = sorted((FIXTURES / "cifake_test_sample" / "FAKE").glob("*.jpg"))[:6] + sorted(
        (FIXTURES / "photo_val_sample" / "REAL").glob("*.jpg"))[:2]
    reference = {path: without_timing(replicas[0].request("POST", "/api/predict", path.read_bytes(), "image/jpeg")[1])
                 for path in files}
    balancer = itertools.cycle(replicas)
    for path in files * 3:  # each file lands on both replicas, in a different order each round
        status, body = next(balancer).request("POST", "/api/predict", path.read_bytes(), "image/jpeg")
        assert status == 200 and without_timing(body) == reference[path]
