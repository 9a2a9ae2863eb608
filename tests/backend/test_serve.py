"""The production launcher (`python -m backend.serve`): its settings from the environment and flags, and the server
it builds. tests/backend/test_live_server.py runs it for real."""
import json
import os

import pytest

from backend.serve import build_server, main, production_settings
from backend.settings import serving_settings


def test_defaults_listen_where_the_config_says_with_one_worker_per_core():
    settings = production_settings({})
    serving = serving_settings()
    assert (settings.host, settings.port) == (serving["host"], serving["port"])
    assert settings.workers == os.cpu_count()
    assert (settings.threads, settings.torch_threads, settings.access_log) == (2, 1, False)


def test_environment_overrides_every_setting():
    settings = production_settings({"DETECTOR_BIND": "0.0.0.0:8000", "DETECTOR_WORKERS": "3",
                                    "DETECTOR_THREADS": "4", "DETECTOR_TORCH_THREADS": "2",
                                    "DETECTOR_ACCESS_LOG": "1"})
    assert (settings.host, settings.port, settings.workers, settings.threads, settings.torch_threads,
            settings.access_log) == ("0.0.0.0", 8000, 3, 4, 2, True)
    assert production_settings({"DETECTOR_BIND": "[::1]:9000"}).host == "::1"


@pytest.mark.parametrize("env, message", [({"DETECTOR_BIND": "8000"}, "host:port"),
                                          ({"DETECTOR_BIND": "localhost:http"}, "whole number"),
                                          ({"DETECTOR_WORKERS": "0"}, "at least 1"),
                                          ({"DETECTOR_THREADS": "two"}, "whole number")])
def test_bad_settings_are_refused_with_the_reason(env, message):
    with pytest.raises(ValueError, match=message):
        production_settings(env)


def test_a_bad_flag_is_a_usage_error_before_anything_starts(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--workers", "0"])
    assert exit_info.value.code == 2
    assert "DETECTOR_WORKERS must be at least 1" in capsys.readouterr().err


def test_the_server_runs_the_buffering_asgi_front_and_replaces_dead_workers():
    server = build_server(production_settings({"DETECTOR_BIND": "127.0.0.1:8123", "DETECTOR_WORKERS": "3",
                                               "DETECTOR_THREADS": "2"}))
    assert (server.target, server.factory, server.interface.value) == ("backend.asgi:create_asgi_app", True, "asgi")
    assert (server.bind_addr, server.bind_port, server.workers) == ("127.0.0.1", 8123, 3)
    assert server.respawn_failed_workers and not server.websockets


def test_the_app_threads_setting_reaches_the_workers_pool(monkeypatch, tiny_weights_dir):
    from backend.asgi import create_asgi_app
    monkeypatch.setenv("DETECTOR_THREADS", "3")
    monkeypatch.setenv("DETECTOR_WEIGHTS_DIR", str(tiny_weights_dir))
    front = create_asgi_app()
    assert front.executor._max_workers == 3


def test_print_settings_shows_what_the_server_would_run_with(capsys, monkeypatch):
    monkeypatch.setenv("DETECTOR_WORKERS", "5")
    main(["--print-settings", "--threads", "3", "--bind", "127.0.0.1:8124"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"server": "granian", "interface": "asgi", "host": "127.0.0.1", "port": 8124, "workers": 5,
                       "threads": 3, "torch_threads": 1, "access_log": False}
