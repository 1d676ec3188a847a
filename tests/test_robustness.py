"""Issue 11, measurement side: `qid measure` under bad input and faults. Nothing the user did not name as output
is changed, every expected failure is one line with exit status 2 (130 for Ctrl-C), one checkpoint is one
cell however it is spelled, and every setting that changes a result is in the cell key and the row."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from cli_runner import run, start_measure_child
from qid.measure import checkpoints, results_table, sweep, textsource
from qid.suite.corpus import load_tokenizer
from qid.suite.models import gpt_neox_config




def assert_one_line_error(status, err, *words):
    """Exit 2, no traceback, and the error as one line, the last (progress and log lines may come before it)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert "Traceback" not in err and lines, err
    assert lines[-1].startswith("qid ") and ": error: " in lines[-1], err
    assert sum(": error: " in line for line in lines) == 1, err
    for word in words:
        assert word in lines[-1], (word, err)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny GPT-NeoX checkpoint with its tokenizer (random weights: only the plumbing is tested)."""
    tokenizer = load_tokenizer()
    folder = tmp_path_factory.mktemp("robust") / "model"
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=len(tokenizer), context=32))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "qid_metadata.json").write_text(json.dumps({"family": "test", "step": 100, "tokens": 51200}))
    return folder


def measure(capsys, folder, output, *extra):
    return run(capsys, "measure", "--checkpoints", folder, "--methods", "rtn", "--bits", "4", "--group-size", "-1",
               "--eval-tokens", "124", "--device", "cpu", "--no-progress", "--output", output, *extra)


@pytest.fixture(scope="module")
def finished_table(model_folder, tmp_path_factory):
    """A results table with one finished cell (written through the library, as a sweep does)."""
    path = tmp_path_factory.mktemp("table") / "qid.csv"
    spec = sweep.SweepSpec(checkpoints=[str(model_folder)], methods=["rtn"], bits=[4], group_sizes=[-1],
                           eval_tokens=124, device="cpu")
    assert sweep.run_sweep(spec, path, progress=False)["written"] == 1
    return path


# ------------------------------------------------------------------------ the output is checked first
def test_a_foreign_csv_as_output_is_refused_and_unchanged(capsys, model_folder, tmp_path):
    output = tmp_path / "people.csv"
    output.write_bytes(b"name,age\nada,36\nalan,41")  # no newline at the end: the old code cut 'alan' off
    before = output.read_bytes()
    status, _, err = measure(capsys, model_folder, output)
    assert_one_line_error(status, err, str(output), "not a QiD results table")
    assert output.read_bytes() == before


def test_a_model_file_as_output_is_refused_and_still_loads(capsys, model_folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(model_folder, copy)
    weights = copy / "model.safetensors"
    before = weights.read_bytes()
    status, _, err = measure(capsys, model_folder, weights)
    assert_one_line_error(status, err, "not a QiD results table")
    assert weights.read_bytes() == before
    GPTNeoXForCausalLM.from_pretrained(str(copy))  # still a loadable model


def test_a_text_file_without_newlines_is_refused_not_replaced(capsys, model_folder, tmp_path):
    output = tmp_path / "notes.txt"
    output.write_text("remember to buy milk")
    status, _, err = measure(capsys, model_folder, output)
    assert_one_line_error(status, err, "not a QiD results table")
    assert output.read_text() == "remember to buy milk"


def test_a_folder_as_output_is_one_line(capsys, model_folder, tmp_path):
    status, _, err = measure(capsys, model_folder, tmp_path)
    assert_one_line_error(status, err, "is a folder")


def test_a_file_where_the_output_folder_should_be_is_one_line(capsys, model_folder, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    status, _, err = measure(capsys, model_folder, blocker / "qid.csv")
    assert_one_line_error(status, err, "is a file, not a folder")
    assert blocker.read_text() == "a file, not a folder"


def test_an_output_under_proc_is_refused_at_once(model_folder):
    # the old code waited forever on a lock file it could not create: run in a child with a deadline
    command = [sys.executable, "-m", "qid", "measure", "--checkpoints", str(model_folder), "--methods", "rtn",
               "--bits", "4", "--device", "cpu", "--output", "/proc/qid.csv"]
    # (the deadline only bounds a hang; a loaded 2-core machine can take a minute to import torch)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert result.returncode == 2 and "system folder" in result.stderr and "Traceback" not in result.stderr


def test_a_table_of_an_earlier_version_is_refused_with_the_missing_columns(capsys, model_folder, tmp_path, finished_table):
    old_columns = [c for c in results_table.COLUMNS if c not in ("calib_seed", "batch_size", "threads")]
    output = tmp_path / "old.csv"
    output.write_text(",".join(old_columns) + "\n")
    before = output.read_bytes()
    status, _, err = measure(capsys, model_folder, output)
    assert_one_line_error(status, err, "earlier version", "batch_size")
    assert output.read_bytes() == before


# ------------------------------------------------------------------------------ faults while writing
def test_a_full_disk_leaves_the_table_whole(capsys, model_folder, tmp_path, finished_table, monkeypatch):
    output = tmp_path / "qid.csv"
    shutil.copy(finished_table, output)
    before = output.read_bytes()

    def half_then_full(descriptor, data):
        import os

        os.write(descriptor, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(output))

    monkeypatch.setattr(results_table, "_write_all", half_then_full)
    status, _, err = measure(capsys, model_folder, output, "--bits", "2")
    assert_one_line_error(status, err, "No space left on device")
    assert output.read_bytes() == before  # the half row was cut back


def test_ctrl_c_says_what_was_saved_exits_130_and_resumes(capsys, model_folder, tmp_path, monkeypatch):
    output = tmp_path / "qid.csv"
    real_append = sweep.append_row

    def append_then_interrupt(path, row):
        written = real_append(path, row)
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "append_row", append_then_interrupt)
    status, _, err = measure(capsys, model_folder, output, "--bits", "2", "4")
    assert status == 130 and "Traceback" not in err
    assert "interrupted" in err and str(output) in err and "resume" in err
    assert len(sweep.load_results(output)) == 1
    monkeypatch.setattr(sweep, "append_row", real_append)
    status, out, err = measure(capsys, model_folder, output, "--bits", "2", "4")
    assert status == 0, err
    assert "1 row(s) written, 1 already done" in out
    assert len(sweep.load_results(output)) == 2


def test_ctrl_c_while_starting_up_exits_130(capsys, monkeypatch):
    import qid.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(qid.cli, "build_parser", interrupted)
    status, _, err = run(capsys, "laws")
    assert status == 130 and "Traceback" not in err and "nothing was written" in err


def test_a_real_sigint_mid_sweep_keeps_whole_rows_and_no_traceback(model_folder, tmp_path):
    """SIGINT to a running `qid measure` once its first row is written (as a user's Ctrl-C): exit 130, one line."""
    import signal
    import time

    output = tmp_path / "qid.csv"
    child = start_measure_child(model_folder, output)
    deadline = time.monotonic() + 600  # a loaded machine may take minutes to the first row
    while time.monotonic() < deadline and child.poll() is None:
        if output.is_file() and output.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=600)
    assert "Traceback" not in err, err
    if child.returncode == 0:
        pytest.skip("the sweep finished before the signal arrived")
    assert child.returncode == 130 and "interrupted" in err.splitlines()[-1], err
    if not output.is_file():
        pytest.skip("no row was written before the deadline: interrupted while starting (exit 130, one line)")
    assert str(output) in err.splitlines()[-1]
    assert output.read_text().endswith("\n") and 1 <= len(sweep.load_results(output)) < 8


# ------------------------------------------------------------------------------------ checkpoints
def test_spellings_of_one_folder_are_one_cell(capsys, model_folder, tmp_path, monkeypatch):
    output = tmp_path / "qid.csv"
    monkeypatch.chdir(model_folder.parent.parent)
    relative = f"{model_folder.parent.name}/{model_folder.name}"
    spellings = [str(model_folder), str(model_folder) + "/", "./" + relative, relative,
                 relative.replace("/", "//"), f"{model_folder.parent}/../{model_folder.parent.name}/model"]
    for spelling in spellings:
        status, _, err = measure(capsys, spelling, output)
        assert status == 0, err
    table = sweep.load_results(output)
    assert len(table) == 1 and table["checkpoint"].iloc[0] == str(model_folder.resolve())
    status, _, err = run(capsys, "measure", "--checkpoints", str(model_folder), relative + "/", "--output",
                         tmp_path / "twice.csv", "--device", "cpu")
    assert_one_line_error(status, err, "listed twice")


def test_hub_ids_are_keyed_with_their_revision():
    assert checkpoints.parse_checkpoint("EleutherAI/pythia-70m").label == "EleutherAI/pythia-70m@main"
    assert checkpoints.parse_checkpoint("EleutherAI/pythia-70m@step1000").label == "EleutherAI/pythia-70m@step1000"


def test_a_checkpoint_without_tokenizer_is_an_error_naming_it(capsys, model_folder, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(model_folder / name, bare / name)
    output = tmp_path / "qid.csv"
    status, _, err = measure(capsys, bare, output)
    assert_one_line_error(status, err, "no tokenizer", "tokenizer.json")
    assert not output.exists()


def test_a_tokenizer_far_smaller_than_the_embedding_is_an_error(model_folder, tmp_path):
    # what transformers falls back to (2 tokens) when the vocabulary file is unusable
    other = tmp_path / "other"
    shutil.copytree(model_folder, other)
    vocabulary = json.loads((other / "tokenizer.json").read_text())
    vocabulary["model"]["vocab"] = dict(list(vocabulary["model"]["vocab"].items())[:300])
    vocabulary["model"]["merges"] = []
    vocabulary["added_tokens"] = []
    (other / "tokenizer.json").write_text(json.dumps(vocabulary))
    with pytest.raises(checkpoints.CheckpointError, match="tokenizer has 3.. tokens but the model embeds"):
        checkpoints.load_checkpoint(str(other))


def test_a_checkpoint_mapping_with_a_bad_number_names_the_key(capsys, model_folder, tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(f"checkpoints: [{{model: '{model_folder}', step: abc}}]\nmethods: [rtn]\nbits: [4]\n")
    status, _, err = run(capsys, "measure", "--config", config, "--output", tmp_path / "qid.csv", "--device", "cpu")
    assert_one_line_error(status, err, "sweep.yaml", "step must be a number", "'abc'")


def test_corrupt_weights_are_one_line(capsys, model_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model_folder, broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage" * 8)
    status, _, err = measure(capsys, broken, tmp_path / "qid.csv")
    assert_one_line_error(status, err, "could not load", str(broken))


def test_batch_size_and_threads_are_in_the_key_and_the_row(capsys, model_folder, tmp_path):
    output = tmp_path / "qid.csv"
    for batch_size in (4, 16, 4):
        status, _, err = measure(capsys, model_folder, output, "--batch-size", batch_size)
        assert status == 0, err
    table = sweep.load_results(output)
    assert sorted(table["batch_size"]) == [4, 16]  # the third run found its cell done
    assert (table["threads"] == torch.get_num_threads()).all()
    assert {"batch_size", "threads", "calib_seed"} <= set(results_table.KEY_COLUMNS)


# ----------------------------------------------------------------------------------------- inputs
def test_a_huge_eval_source_is_refused_before_reading(capsys, model_folder, tmp_path):
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as handle:  # sparse: no disk or memory used
        handle.truncate(textsource.MAX_TEXT_BYTES + 1)
    status, _, err = measure(capsys, model_folder, tmp_path / "qid.csv", "--eval-source", huge)
    assert_one_line_error(status, err, "MiB", "head -c")


def test_an_unreadable_eval_source_is_one_line(capsys, model_folder, tmp_path, monkeypatch):
    text = tmp_path / "secret.txt"
    text.write_text("some text " * 100)
    real_read_text = type(text).read_text

    def refuse(self, *args, **kwargs):  # chmod 000 does not stop root, who runs the tests in CI
        if self.name == "secret.txt":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(type(text), "read_text", refuse)
    status, _, err = measure(capsys, model_folder, tmp_path / "qid.csv", "--eval-source", text)
    assert_one_line_error(status, err, "secret.txt: Permission denied")


def test_a_checkpoint_file_given_as_a_folder_is_one_line(capsys, model_folder, tmp_path):
    status, _, err = measure(capsys, model_folder / "config.json", tmp_path / "qid.csv")
    assert_one_line_error(status, err, "is a file, not a model folder")


def test_long_offending_values_are_quoted_as_an_excerpt(capsys, tmp_path):
    status, _, err = run(capsys, "measure", "--checkpoints", "x" * 50_000, "--output", tmp_path / "qid.csv")
    assert_one_line_error(status, err)
    assert len(err) < 500


def test_train_suite_names_an_unknown_size(capsys, tmp_path):
    status, _, err = run(capsys, "train-suite", "--sizes", "99m", "--runs-dir", tmp_path, "--list")
    assert_one_line_error(status, err, "99m", "unknown size")
