"""Issue 22: nothing hangs. A hub that accepts connections and never answers, a Ray address where nothing listens,
and loss curves whose Multi-Power term would not fit in memory each end in one clear line.

The subprocesses here are waited for without a tight limit (a loaded machine is slow to import torch); the
generous `timeout` only keeps a regression from hanging the test suite forever.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from test_robustness import model_folder  # noqa: F401  (the tiny checkpoint fixture)

HANG_GUARD_S = 1800  # a regression that hangs fails here instead of blocking the suite


@pytest.fixture()
def silent_endpoint():
    """http://127.0.0.1:PORT of a server that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


def _qid(arguments, endpoint, tmp_path):
    environment = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
                   "HF_HOME": str(tmp_path / "hf_home"), "QID_HUB_TIMEOUT_S": "2"}
    return subprocess.run([sys.executable, "-m", "qid", *arguments], capture_output=True, text=True, env=environment,
                          timeout=HANG_GUARD_S)


def _assert_hub_timeout_line(result, endpoint):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "did not answer within 2 s" in lines[-1] and endpoint in lines[-1], result.stderr


def test_a_hub_checkpoint_behind_a_silent_endpoint_fails_with_one_line(silent_endpoint, tmp_path):
    result = _qid(["measure", "--checkpoints", "EleutherAI/pythia-14m@step1000", "--methods", "rtn", "--bits", "4",
                   "--device", "cpu", "--no-progress", "--output", str(tmp_path / "qid.csv")], silent_endpoint, tmp_path)
    _assert_hub_timeout_line(result, silent_endpoint)
    assert "EleutherAI/pythia-14m@step1000" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "qid.csv").exists()


def test_a_named_eval_source_behind_a_silent_endpoint_fails_with_one_line(silent_endpoint, tmp_path, model_folder):  # noqa: F811
    result = _qid(["measure", "--checkpoints", str(model_folder), "--methods", "rtn", "--bits", "4", "--group-size", "-1",
                   "--eval-source", "wikitext2", "--eval-tokens", "124", "--device", "cpu", "--no-progress",
                   "--output", str(tmp_path / "qid.csv")], silent_endpoint, tmp_path)
    _assert_hub_timeout_line(result, silent_endpoint)
    assert "wikitext2" in result.stderr.splitlines()[-1]


def test_the_hub_time_limit_must_be_a_positive_number(monkeypatch):
    from qid.measure.hub_requests import hub_timeout_seconds

    monkeypatch.setenv("QID_HUB_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="QID_HUB_TIMEOUT_S"):
        hub_timeout_seconds()
