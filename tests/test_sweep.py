"""Sweeps: 16-bit QiD is exactly 0, resume after a crash equals an uninterrupted run, shards merge, locked
appends survive concurrent writers, the 16-bit loss is computed once per checkpoint, bad inputs fail clearly."""

import csv
import multiprocessing

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from qid import cli

from qid.measure import evaluate, sweep
from qid.measure.checkpoints import CheckpointNotFoundError
from qid.suite.corpus import load_tokenizer
from qid.suite.models import gpt_neox_config
from qid.measure.sweep import SweepSpec, SweepSpecError, append_row, load_sweep_spec, run_sweep

# columns that legitimately differ between two runs of the same cell
TIMING_COLUMNS = ["seconds", "quantize_seconds", "finished_at", "git_commit"]


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory):
    """Two tiny GPT-NeoX checkpoints (random weights: determinism is what matters here) with suite metadata."""
    import json

    tokenizer = load_tokenizer()
    folders = []
    for index, step in enumerate((100, 200)):
        folder = tmp_path_factory.mktemp("models") / f"step-{step:06d}"
        torch.manual_seed(index)
        model = GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=len(tokenizer), context=32))
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        (folder / "qid_metadata.json").write_text(json.dumps({"family": "test", "step": step, "tokens": step * 512}))
        folders.append(str(folder))
    return folders


def _spec(folders, **overrides):
    values = dict(checkpoints=folders, methods=["rtn", "gptq"], bits=[2, 4], group_sizes=[-1], eval_tokens=620,
                  calibration_samples=4, device="cpu", batch_size=16)
    values.update(overrides)
    return SweepSpec(**values)


def _table(path):
    table = sweep.load_results(path).drop(columns=TIMING_COLUMNS)
    return table.sort_values(["checkpoint", "method", "bits"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(model_folders, tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "qid.csv"
    summary = run_sweep(_spec(model_folders), path, progress=False)
    assert summary["written"] == summary["cells"] == 8
    return path


def test_rows_carry_metadata_and_provenance(uninterrupted, model_folders):
    table = sweep.load_results(uninterrupted)
    assert list(table.columns) == list(sweep.COLUMNS)
    assert len(table) == 8
    first = table[table["checkpoint"] == model_folders[0]].iloc[0]
    assert (first["family"], first["step"], first["D"], first["N"]) == ("test", 100, 51200, 100_096)
    assert (first["device"], first["dtype"], first["eval_window"]) == ("cpu", "float32", 32)
    assert first["eval_windows"] * 31 >= first["eval_tokens"] == 620
    assert "torch=" in first["versions"] and first["git_commit"]
    assert (table["qid_se"] >= 0).all() and (table["loss_q"] - table["loss_16"] - table["qid"]).abs().max() < 1e-9


def test_sixteen_bits_gives_qid_exactly_zero(model_folders, tmp_path):
    path = tmp_path / "qid.csv"
    run_sweep(_spec(model_folders[:1], methods=["rtn", "gptq", "awq"], bits=[16]), path, progress=False)
    table = sweep.load_results(path)
    assert len(table) == 3
    assert (table["qid"] == 0.0).all() and (table["qid_se"] == 0.0).all()
    assert (table["loss_q"] == table["loss_16"]).all()


def test_interrupted_sweep_resumes_to_the_same_table(model_folders, uninterrupted, tmp_path, monkeypatch):
    path = tmp_path / "qid.csv"
    written = []

    def crash_after_three(row):
        written.append(row)
        if len(written) == 3:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        run_sweep(_spec(model_folders), path, progress=False, after_cell=crash_after_three)
    assert len(sweep.load_results(path)) == 3  # every finished row kept

    # a Ctrl-C in the middle of the next cell's evaluation
    calls = []

    def interrupting(original):
        def interrupt_on_third_call(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return original(*args, **kwargs)
        return interrupt_on_third_call

    # the quantized evaluation goes through window_divergence (QiD with KL and top-1), the 16-bit one through
    # reference_log_probs (window_losses without KL): count every evaluation
    for name in ("window_losses", "reference_log_probs", "window_divergence"):
        monkeypatch.setattr(evaluate, name, interrupting(getattr(evaluate, name)))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_spec(model_folders), path, progress=False)
    monkeypatch.undo()
    assert len(sweep.load_results(path)) == 4  # the interrupted cell left nothing half-written

    summary = run_sweep(_spec(model_folders), path, progress=False)
    assert (summary["already_done"], summary["written"]) == (4, 4)
    assert _table(path).equals(_table(uninterrupted))
    summary = run_sweep(_spec(model_folders), path, progress=False)  # nothing left: nothing duplicated
    assert (summary["already_done"], summary["written"]) == (8, 0) and len(sweep.load_results(path)) == 8


def test_shards_merge_into_the_same_table(model_folders, uninterrupted, tmp_path):
    path = tmp_path / "qid.csv"
    for index in (2, 1, 3):  # any order
        run_sweep(_spec(model_folders), path, shard=f"{index}/3", progress=False)
    assert _table(path).equals(_table(uninterrupted))


def test_the_16_bit_loss_is_computed_once_per_checkpoint(model_folders, tmp_path, monkeypatch):
    calls = {"window_losses": 0, "reference_log_probs": 0, "window_divergence": 0}

    def counting(name, original):
        def counted(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)
        return counted

    for name in calls:
        monkeypatch.setattr(evaluate, name, counting(name, getattr(evaluate, name)))
    run_sweep(_spec(model_folders, methods=["rtn"], bits=[2, 3, 4]), tmp_path / "qid.csv", progress=False)
    # per checkpoint: one 16-bit evaluation (its losses and, for KL, its log-probabilities), then one per cell
    assert calls == {"window_losses": 0, "reference_log_probs": 2, "window_divergence": 2 * 3}


def test_a_partial_last_line_from_a_killed_writer_is_dropped(uninterrupted, tmp_path):
    path = tmp_path / "qid.csv"
    text = uninterrupted.read_text()
    path.write_text(text[: text.rstrip("\n").rfind("\n") + 1] + "test,half-a-row,1")
    assert len(sweep.finished_keys(path)) == 7
    assert len(sweep.load_results(path)) == 7


def _row(index):
    row = {column: "" for column in sweep.COLUMNS}
    row.update(checkpoint=f"model-{index % 25}", method="rtn", bits=4, group_size=128, loss_16=3.0, loss_q=3.1,
               qid=0.1, qid_se=0.01, N=1000, eval_tokens=10, seed=0)
    return row


def _write_rows(path, indices):
    for index in indices:
        append_row(path, _row(index))


def test_concurrent_writers_neither_corrupt_nor_duplicate(tmp_path):
    path = tmp_path / "qid.csv"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_rows, args=(path, range(start, start + 30))) for start in (0, 10, 20)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == sweep.COLUMNS
    assert all(len(row) == len(sweep.COLUMNS) for row in rows)
    assert sorted(row[1] for row in rows[1:]) == sorted(f"model-{i}" for i in range(25))  # 25 distinct cells


# ---------------------------------------------------------------------------------------------- bad inputs
def test_bad_specs_are_one_clear_error(model_folders, tmp_path):
    cases = [
        (dict(methods=["rtn", "int4"]), SweepSpecError, "unknown quantization method 'int4'"),
        (dict(bits=[1]), SweepSpecError, "bits must be an integer from 2 to 16"),
        (dict(bits=[17]), SweepSpecError, "bits must be an integer from 2 to 16"),
        (dict(checkpoints=[]), SweepSpecError, "checkpoints: the list is empty"),
        (dict(methods=[]), SweepSpecError, "methods: the list is empty"),
        (dict(checkpoints=[str(tmp_path / "missing")]), CheckpointNotFoundError, "missing does not exist"),
        (dict(eval_tokens=0), SweepSpecError, "eval_tokens must be an integer"),
        (dict(group_sizes=[0]), SweepSpecError, "group_size"),
        (dict(device="tpu"), SweepSpecError, "device"),
    ]
    for overrides, error, message in cases:
        with pytest.raises(error, match=message):
            _spec(model_folders, **overrides).validated()


def test_yaml_specs_and_their_errors(model_folders, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(f"checkpoints: [{model_folders[0]}]\nmethods: [gptq]\nbits: [3]\ngroup_sizes: [-1]\n")
    spec = load_sweep_spec(good, overrides={"eval_tokens": 100, "bits": None})
    assert (spec.methods, spec.bits, spec.group_sizes, spec.eval_tokens) == (["gptq"], [3], [-1], 100)
    cases = {
        "checkpoints: [a, b\nmethods: rtn\n": "malformed YAML at line",
        "- just\n- a list\n": "expected a mapping",
        "": "the file is empty",
        f"checkpoints: [{model_folders[0]}]\nbitz: [2]\n": "unknown key.*bitz",
        "checkpoints: []\n": "checkpoints: the list is empty",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(SweepSpecError, match=message):
            load_sweep_spec(path)
    with pytest.raises(SweepSpecError, match="not found"):
        load_sweep_spec(tmp_path / "absent.yaml")
    for text in ("3/2", "0/2", "a/b", "2"):
        with pytest.raises(SweepSpecError, match="shard"):
            sweep.parse_shard(text)


def test_cli_measure_errors_are_one_line_and_exit_2(model_folders, tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("checkpoints: [x\n")
    cases = [
        ["--checkpoints", model_folders[0], "--methods", "magic"],
        ["--checkpoints", model_folders[0], "--bits", "17"],
        ["--checkpoints", str(tmp_path / "nowhere")],
        ["--config", str(bad_yaml)],
        [],
    ]
    for arguments in cases:
        assert cli.main(["measure", *arguments, "--output", str(tmp_path / "out.csv")]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("qid measure: error:") and "\n" not in error, error
    assert not (tmp_path / "out.csv").exists()


def test_cli_measure_runs_and_resumes(model_folders, tmp_path, capsys):
    arguments = ["measure", "--checkpoints", model_folders[0], "--methods", "rtn", "--bits", "3", "16",
                 "--group-size", "-1", "--eval-tokens", "300", "--device", "cpu", "--no-progress",
                 "--output", str(tmp_path / "out.csv")]
    assert cli.main(arguments) == 0
    assert "2 row(s) written" in capsys.readouterr().out
    assert cli.main(arguments) == 0
    assert "0 row(s) written, 2 already done" in capsys.readouterr().out


# ------------------------------------------------------------------------- formats and bits per weight (issue 23)
def test_cli_measures_the_float_formats_with_bits_per_weight(model_folders, tmp_path, capsys):
    """`qid measure --methods mxfp4 nvfp4 fp4 fp8` on a local checkpoint: one row per format at its own bit width
    with its storage cost; MXFP4/NVFP4 rows key on their fixed block, so two requested group sizes give one row."""
    output = tmp_path / "formats.csv"
    arguments = ["measure", "--checkpoints", model_folders[0], "--methods", "mxfp4", "nvfp4", "fp4", "fp8", "rtn",
                 "--bits", "4", "8", "--group-size", "32", "64", "--eval-tokens", "300", "--device", "cpu",
                 "--no-progress", "--output", str(output)]
    assert cli.main(arguments) == 0
    out = capsys.readouterr().out
    assert "10 row(s) written" in out, out  # mxfp4/nvfp4/fp4 exist at 4 bits only, fp8 at 8
    table = sweep.load_results(output).set_index(["method", "bits", "group_size"])
    assert sorted(table.index) == sorted([("mxfp4", 4, 32), ("nvfp4", 4, 16), ("fp4", 4, 32), ("fp4", 4, 64),
                                          ("fp8", 8, 32), ("fp8", 8, 64), ("rtn", 4, 32), ("rtn", 4, 64),
                                          ("rtn", 8, 32), ("rtn", 8, 64)])
    bpw = table["bits_per_weight"]
    assert bpw[("mxfp4", 4, 32)] == 4.25 and 4.5 < bpw[("nvfp4", 4, 16)] < 4.51  # + the FP32 tensor scales
    assert bpw[("fp8", 8, 64)] == 8.25 and bpw[("fp4", 4, 32)] == 4.5 and bpw[("rtn", 4, 64)] == 4 + 20 / 64
    assert (table["qid"].abs() < 1).all() and table["qid_se"].notna().all()
    assert cli.main(arguments) == 0
    assert "0 row(s) written, 10 already done" in capsys.readouterr().out


def test_a_table_without_bits_per_weight_is_read_but_not_appended_to(model_folders, uninterrupted, tmp_path, capsys):
    """Tables written before bits_per_weight existed stay readable; appending to one is refused with one line naming
    the file and the missing column, and the file is left untouched."""
    with open(uninterrupted, newline="") as handle:
        rows = list(csv.DictReader(handle))
    old_columns = [column for column in sweep.COLUMNS if column != "bits_per_weight"]
    output = tmp_path / "before_issue23.csv"
    with open(output, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=old_columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    before = output.read_bytes()
    old = sweep.load_results(output)
    assert len(old) == len(rows) and "bits_per_weight" not in old.columns
    status = cli.main(["measure", "--checkpoints", model_folders[0], "--methods", "rtn", "--bits", "4",
                       "--eval-tokens", "300", "--device", "cpu", "--no-progress", "--output", str(output)])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and str(output) in error, error
    assert "earlier version" in error and "bits_per_weight" in error
    assert output.read_bytes() == before


def test_an_earlier_table_can_be_set_aside_and_nothing_else_is(uninterrupted, tmp_path):
    """A chapter's scratch table from before bits_per_weight is renamed so the chapter measures afresh; a table of
    this version and a file that is no table are left where they are."""
    from qid.measure import results_table

    old = tmp_path / "qid.csv"
    with open(uninterrupted, newline="") as handle:
        rows = list(csv.reader(handle))
    keep = [i for i, column in enumerate(rows[0]) if column != "bits_per_weight"]
    with open(old, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([[row[i] for i in keep] for row in rows])
    moved = results_table.set_aside_earlier_version(old)
    assert moved == tmp_path / "qid.earlier-1.csv" and moved.is_file() and not old.exists()
    assert results_table.set_aside_earlier_version(uninterrupted) is None and uninterrupted.exists()
    other = tmp_path / "notes.csv"
    other.write_text("a,b\n1,2\n")
    assert results_table.set_aside_earlier_version(other) is None and other.exists()
    assert results_table.set_aside_earlier_version(tmp_path / "absent.csv") is None
