"""Sweeps on a real local Ray cluster (2 CPUs): the same rows as the serial sweep; a task that raises or whose
worker process is killed is retried with only its unfinished cells (no row lost or duplicated); retries are
bounded and the failing checkpoint is named; input errors are not retried; an interrupted driver resumes."""

import json
import os
import shutil
import signal
import sys

import pytest
import ray  # a requirement (requirements.txt): a missing ray fails here, it is not skipped
import torch
from transformers import GPTNeoXForCausalLM

from qid.suite import run as suite_run
from qid.common import raycluster
from qid.measure import ray_sweep, sweep
from qid.suite.corpus import load_tokenizer
from qid.suite.models import gpt_neox_config
from qid.measure.sweep import SweepSpec, run_sweep

# Hooks defined here run in Ray's worker processes, which cannot import this test module: send them by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

# legitimately differ between two runs (others commit to the shared tree while the tests run)
TIMING_COLUMNS = ["seconds", "quantize_seconds", "finished_at", "git_commit"]


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    raycluster.connect("local", num_cpus=2, log=lambda message: None)  # the CLI's private cluster (--ray)
    yield
    ray.shutdown()


def test_the_local_cluster_listens_on_loopback_only(cluster):
    """Issue 22: a private cluster (tests, --ray without an address) binds 127.0.0.1, not the network interface."""
    addresses = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    assert addresses == {"127.0.0.1"}


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory):
    """Three tiny GPT-NeoX checkpoints with suite metadata (random weights: what matters is determinism)."""
    tokenizer = load_tokenizer()
    folders = []
    for index, step in enumerate((100, 200, 300)):
        folder = tmp_path_factory.mktemp("models") / f"step-{step:06d}"
        torch.manual_seed(index)
        GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=len(tokenizer), context=32)).save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        (folder / "qid_metadata.json").write_text(json.dumps({"family": "test", "step": step, "tokens": step * 512}))
        folders.append(str(folder))
    return folders


def _spec(folders):
    return SweepSpec(checkpoints=folders, methods=["rtn", "gptq"], bits=[2, 4], group_sizes=[-1], eval_tokens=620,
                     calibration_samples=4, device="cpu", batch_size=16)


def _table(path):
    table = sweep.load_results(path).drop(columns=TIMING_COLUMNS)
    return table.sort_values(["checkpoint", "method", "bits"]).reset_index(drop=True)


def assert_same_rows(path, serial):
    table = _table(path)
    assert len(table) == len(serial)
    differing = {column: (table[column].tolist(), serial[column].tolist())
                 for column in serial.columns if not table[column].equals(serial[column])}
    assert not differing, differing


@pytest.fixture(scope="module")
def serial(model_folders, tmp_path_factory):
    # One torch thread, as in a Ray task given one CPU, so that both runs sum in the same order.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path_factory.mktemp("serial") / "qid.csv"
        assert run_sweep(_spec(model_folders), path, progress=False)["written"] == 12
    finally:
        torch.set_num_threads(threads)
    return _table(path)


def fail_first_try(marker_dir, checkpoint, after_rows, kill):
    """A worker hook: on its first try, the task of `checkpoint` raises (or its process is killed with SIGKILL)
    after sending `after_rows` rows. Tries are counted in files, as worker processes share no memory."""

    def hook(row):
        if row["checkpoint"] != checkpoint:
            return
        sent = marker_dir / f"{os.path.basename(checkpoint)}.rows"
        count = len(sent.read_text()) if sent.exists() else 0
        sent.write_text("x" * (count + 1))
        if count == after_rows and not (marker_dir / f"{os.path.basename(checkpoint)}.failed").exists():
            (marker_dir / f"{os.path.basename(checkpoint)}.failed").write_text("")
            if kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("injected failure")

    return hook


def always_fail(checkpoint):
    def hook(row):
        if row["checkpoint"] == checkpoint:
            raise RuntimeError("injected failure on every try")

    return hook


def both(*hooks):
    def hook(row):
        for each in hooks:
            each(row)

    return hook


def test_ray_rows_equal_the_serial_rows(cluster, model_folders, serial, tmp_path):
    path = tmp_path / "qid.csv"
    summary = ray_sweep.run_sweep_on_ray(_spec(model_folders), path, progress=False, log=lambda message: None)
    assert (summary["written"], summary["already_done"], summary["failed"]) == (12, 0, [])
    assert_same_rows(path, serial)
    assert len(ray_sweep.results_for(_spec(model_folders), path)) == 12  # found under the tasks' thread count
    again = ray_sweep.run_sweep_on_ray(_spec(model_folders), path, progress=False, log=lambda message: None)
    assert (again["written"], again["already_done"]) == (0, 12)


def test_a_raising_task_and_a_killed_worker_are_retried_without_losing_or_duplicating_rows(
        cluster, model_folders, serial, tmp_path):
    path, messages = tmp_path / "qid.csv", []
    hook = both(fail_first_try(tmp_path, model_folders[0], after_rows=1, kill=False),
                fail_first_try(tmp_path, model_folders[1], after_rows=2, kill=True))
    summary = ray_sweep.run_sweep_on_ray(_spec(model_folders), path, progress=False, log=messages.append,
                                           worker_hook=hook)
    assert (summary["written"], summary["failed"]) == (12, [])
    assert_same_rows(path, serial)
    retries = [message for message in messages if "resubmitting" in message]
    assert len(retries) == 2
    assert any(model_folders[0] in m and "injected failure" in m and "its 3 unfinished" in m for m in retries)
    assert any(model_folders[1] in m and "its 2 unfinished" in m for m in retries)  # the killed worker's task


def test_retries_are_bounded_and_the_failing_checkpoint_is_named(cluster, model_folders, tmp_path):
    broken = tmp_path / "broken-checkpoint"
    broken.mkdir()
    shutil.copy(os.path.join(model_folders[0], "config.json"), broken / "config.json")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    path, messages = tmp_path / "qid.csv", []
    spec = _spec([model_folders[0], model_folders[2], str(broken)])
    with pytest.raises(ray_sweep.DistributedSweepError) as raised:
        ray_sweep.run_sweep_on_ray(spec, path, progress=False, attempts=2, log=messages.append,
                                     worker_hook=always_fail(model_folders[2]))
    text = str(raised.value)
    assert model_folders[2] in text and "injected failure on every try" in text
    assert str(broken) in text and "CheckpointError" in text
    # the always-failing task ran twice; the input error only once
    assert sum(model_folders[2] in m and "giving up" in m and "try 2 of 2" in m for m in messages) == 1
    assert sum(str(broken) in m and "giving up" in m and "try 1 of 2" in m for m in messages) == 1
    # every row of the healthy checkpoint is in, once
    table = sweep.load_results(path)
    assert sorted(table["checkpoint"]) == [model_folders[0]] * 4
    assert raised.value.summary["written"] == 4


def test_an_interrupted_driver_resumes_without_duplicates(cluster, model_folders, serial, tmp_path):
    path = tmp_path / "qid.csv"
    appended = []

    def interrupt_after_five(row):
        appended.append(row)
        if len(appended) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ray_sweep.run_sweep_on_ray(_spec(model_folders), path, progress=False, log=lambda message: None,
                                     after_row=interrupt_after_five)
    assert len(sweep.load_results(path)) == 5
    summary = ray_sweep.run_sweep_on_ray(_spec(model_folders), path, progress=False, log=lambda message: None)
    assert (summary["already_done"], summary["written"]) == (5, 7)
    assert_same_rows(path, serial)


def test_the_cli_sends_measure_to_ray(cluster, model_folders, serial, tmp_path):
    from qid import cli

    path = tmp_path / "qid.csv"
    arguments = ["measure", "--checkpoints", *model_folders, "--methods", "rtn", "gptq", "--bits", "2", "4",
                 "--group-size", "-1", "--eval-tokens", "620", "--calibration-samples", "4", "--device", "cpu",
                 "--batch-size", "16", "--output", str(path), "--no-progress", "--ray"]
    assert cli.main(arguments) == 0
    assert_same_rows(path, serial)


def test_the_cli_names_a_checkpoint_that_failed_on_ray(cluster, model_folders, tmp_path, capsys):
    from qid import cli

    broken = tmp_path / "broken-checkpoint"
    broken.mkdir()
    shutil.copy(os.path.join(model_folders[0], "config.json"), broken / "config.json")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    path = tmp_path / "qid.csv"
    arguments = ["measure", "--checkpoints", model_folders[0], str(broken), "--methods", "rtn", "--bits", "4",
                 "--group-size", "-1", "--eval-tokens", "620", "--device", "cpu", "--output", str(path),
                 "--no-progress", "--ray", "local"]
    assert cli.main(arguments) == cli.EXIT_TASKS_FAILED
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("qid measure: error: 1 checkpoint(s) failed") and str(broken) in error
    assert len(sweep.load_results(path)) == 1  # the healthy checkpoint's row is saved


def test_suite_training_on_ray_gives_the_serial_checkpoints(cluster, tmp_path):
    import dataclasses

    from safetensors.torch import load_file

    from qid.suite import plan as suite

    # the tiny preset, shortened: one cosine run per size to D/N 2.5 (two groups, so two tasks)
    preset = dataclasses.replace(suite.get_preset("tiny"), name="test", ladder=(2.5,),
                                 max_rung={"13k": 2.5, "25k": 2.5}, cosine_seeds=(0,), eval_sequences=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a one-CPU Ray task
    try:
        serial = suite_run.train_suite(preset, tmp_path / "serial", designs=("cosine",), progress=False, log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    on_ray = suite_run.train_suite(preset, tmp_path / "ray", designs=("cosine",), log=lambda m: None, ray="local")
    assert len(serial) == len(on_ray) == 2
    for folder in serial:
        twin = tmp_path / "ray" / folder.relative_to(tmp_path / "serial")
        assert twin in on_ray
        weights, twin_weights = load_file(folder / "model.safetensors"), load_file(twin / "model.safetensors")
        assert weights.keys() == twin_weights.keys()
        assert all(torch.equal(weights[name], twin_weights[name]) for name in weights)


_KILLED_DRIVER = """
import json, sys
from qid.common import raycluster
import psutil
raycluster.connect("local", num_cpus=1, log=lambda message: None)
children = [p.pid for p in psutil.Process().children(recursive=True)]
print(json.dumps(children), flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_a_driver_killed_with_sigkill_leaves_no_ray_process_behind(tmp_path):
    """Issue 22: Ray's dashboard and runtime-env agents outlived a SIGKILLed driver; the watchdog stops them."""
    import subprocess
    import time

    import psutil

    driver = subprocess.Popen([sys.executable, "-c", _KILLED_DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        started = json.loads(driver.stdout.readline())
        processes = []
        for pid in started:
            try:
                processes.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        names = {" ".join(p.cmdline())[:40] for p in processes if p.is_running()}
        assert any("DashboardAgent" in name or "dashboard" in name for name in names), names  # what used to stay
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        # the watchdog polls every 0.5 s and waits 3 s after SIGTERM; without it the agents lived ~60 s
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if not left:
                break
            time.sleep(0.5)
        assert not left, [" ".join(p.cmdline())[:60] for p in left]
    finally:
        if driver.poll() is None:
            driver.kill()
