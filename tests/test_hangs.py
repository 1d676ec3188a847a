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


def test_a_ray_address_where_nothing_listens_fails_fast():
    """Ray's client retries an unreachable GCS for minutes (chapter 02 with a dead RAY_ADDRESS hung); the
    connection is now tried first and refused with one line."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    code = f"from qid.common.raycluster import connect\nconnect('127.0.0.1:{port}')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode != 0 and "ValueError" in result.stderr, result.stderr
    assert f"--ray 127.0.0.1:{port}: no Ray cluster reachable there" in result.stderr, result.stderr


def test_a_curve_measured_at_every_step_is_refused_not_a_memory_exhaustion(capsys, tmp_path):
    """60,000 steps of a cosine with the loss at every step (2 MB of CSV): the Multi-Power term would hold
    ~1.8e9 pairs (14 GB). It is counted before anything is allocated and refused with one line."""
    from cli_runner import run
    from qid.laws.curves import curve_table
    from qid.laws.schedules import cosine

    lr = cosine(60_000, 500, 3e-4, 3e-5)
    steps = np.arange(500, 60_000)
    path = tmp_path / "every_step.csv"
    curve_table({"long": {"lr": lr, "steps": steps, "loss": 3.0 + 1.0 / np.sqrt(steps)}}).to_csv(path, index=False)
    status, _, err = run(capsys, "fit", "--law", "luo_multipower", "--data", path, "--starts", 1)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and "Traceback" not in err and len(lines) == 1, err
    assert "run 'long'" in lines[0] and "Multi-Power term" in lines[0] and "fewer steps" in lines[0]
