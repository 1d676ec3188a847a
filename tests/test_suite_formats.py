"""The suite's format measurement (issue 23) on the tiny preset: the cells, bits per weight, resuming, the CLI."""

import numpy as np
import pandas as pd
import pytest

from qid import cli
from qid.suite import formats as suite_formats
from qid.suite import run as suite_run
from qid.suite import tables as suite_tables

CELLS_PER_CHECKPOINT = 10 + 4  # 4 bits: rtn, gptq, fp4 at two groupings + mxfp4, nvfp4, gptq-mxfp4, gptq-nvfp4; 8 bits: rtn, fp8 × 2


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The tiny preset's smallest size, cosine design (two training seeds, three rungs each): six checkpoints."""
    runs = tmp_path_factory.mktemp("formats") / "runs"
    suite_run.train_suite("tiny", runs, designs=("cosine",), sizes=("13k",), progress=False, log=lambda message: None,
                          stage="all")
    return runs


def test_formats_on_the_tiny_ladder_resume_and_carry_bits_per_weight(tiny_runs, tmp_path, capsys):
    output_dir = tmp_path / "tables"
    path = suite_formats.measure_formats("tiny", tiny_runs, output_dir, progress=False, limit=1, log=lambda m: None)
    table = pd.read_csv(path)
    assert tuple(table.columns) == suite_formats.FORMATS_COLUMNS
    assert len(table) == CELLS_PER_CHECKPOINT
    order = suite_formats.measurement_order(suite_tables.measured_checkpoints(
        suite_tables.collect_checkpoints("tiny", tiny_runs)))
    first = order.iloc[0]
    assert (first["design"], first["train_seed"]) == ("cosine", 0)
    assert set(table["run"]) == {first["run"]} and set(table["step"]) == {first["step"]}
    cell = table.set_index(["run", "step", "method", "bits", "group_size"])
    assert not cell.index.duplicated().any()
    assert set(table.loc[table["method"] == "mxfp4", "group_size"]) == {32}
    assert set(table.loc[table["method"] == "nvfp4", "group_size"]) == {16}
    assert (table.loc[table["method"] == "mxfp4", "bits_per_weight"] == 4.25).all()
    nvfp4 = table.loc[table["method"] == "nvfp4", "bits_per_weight"]
    assert ((nvfp4 > 4.5) & (nvfp4 < 4.52)).all()  # 4.5 + one FP32 scale per (small) tensor
    integer = table[(table["method"] == "rtn") & (table["bits"] == 4)]
    assert integer["bits_per_weight"].between(4 + 20 / 256, 4 + 20 / 32).all()
    assert np.isfinite(table[["qid", "qid_se", "kl", "top1_agree", "bits_per_weight"]].to_numpy()).all()
    # the CLI goes on where the function stopped (one more checkpoint), and a rerun adds nothing
    arguments = [str(a) for a in ["measure-suite", "--preset", "tiny", "--runs-dir", tiny_runs, "--formats",
                                  "--output-dir", output_dir, "--limit", 2, "--no-progress"]]
    assert cli.main(arguments) == 0
    assert len(pd.read_csv(path)) == 2 * CELLS_PER_CHECKPOINT
    import json

    provenance = json.loads(suite_formats.formats_provenance_path("tiny", output_dir).read_text())
    assert (provenance["checkpoints"], provenance["rows"]) == (2, 2 * CELLS_PER_CHECKPOINT)
    assert provenance["commits"] and provenance["threads"] and provenance["devices"] == ["cpu"]
    before = path.read_bytes()
    assert cli.main(arguments) == 0
    assert path.read_bytes() == before
    capsys.readouterr()
    assert cli.main(["measure-suite", "--preset", "tiny", "--limit", "0", "--formats"]) == 2
    assert "--limit" in capsys.readouterr().err


def test_the_committed_cpu_formats_table_covers_the_suites_cosine_ladder():
    """Issue 23: every ladder checkpoint of the book's suite (cosine design, the committed checkpoints table) measured
    at every format cell, each row with its storage cost, KL and top-1; the 16-bit losses are the suite's own."""
    from qid.common.paths import DATA_DIR

    table = pd.read_csv(DATA_DIR / "suite" / "cpu_formats.csv")
    checkpoints = pd.read_csv(DATA_DIR / "suite" / "cpu_checkpoints.csv")
    ladder = checkpoints[(checkpoints["design"] == "cosine") & checkpoints["rung"].notna()]
    measured = table[["run", "step"]].drop_duplicates()
    # seed 0's whole ladder at every size (seed 1 where the machine reached it), nothing outside the ladder
    seed0 = ladder[ladder["train_seed"] == 0]
    assert set(zip(seed0["run"], seed0["step"])) <= set(zip(measured["run"], measured["step"]))
    assert set(zip(measured["run"], measured["step"])) <= set(zip(ladder["run"], ladder["step"]))
    assert set(table["size"]) == set(checkpoints["size"])
    cells = table.groupby(["run", "step"]).size()
    assert (cells == CELLS_PER_CHECKPOINT).all(), cells[cells != CELLS_PER_CHECKPOINT]
    assert table.duplicated(["run", "step", "method", "bits", "group_size"]).sum() == 0
    for column in ("bits_per_weight", "qid", "qid_se", "kl", "top1_agree"):
        assert table[column].notna().all(), column
    assert (table["qid_se"] > 0).all() and (table["kl"] >= 0).all() and table["top1_agree"].between(0, 1).all()
    mx, nv = table[table["method"] == "mxfp4"], table[table["method"] == "nvfp4"]
    # 4.25 (4.5) where rows are whole blocks; a partial block at a row's end costs a whole scale; NVFP4 + its tensor scale
    assert mx["bits_per_weight"].min() == 4.25 and (mx["bits_per_weight"] >= 4.25).all()
    assert (nv["bits_per_weight"] > 4.5).all() and (nv["bits_per_weight"] < 4.6).all()
    # the retrained checkpoints are the committed ones: their 16-bit loss equals the suite's table
    merged = table.drop_duplicates(["run", "step"]).merge(ladder[["run", "step", "eval_loss"]], on=["run", "step"])
    suite_qid = pd.read_csv(DATA_DIR / "suite" / "cpu_qid.csv").query("design == 'cosine'")
    loss16 = suite_qid.drop_duplicates(["run", "step"])[["run", "step", "loss_16"]]
    both = table.drop_duplicates(["run", "step"])[["run", "step", "loss_16"]].merge(loss16, on=["run", "step"],
                                                                                     suffixes=("", "_suite"))
    assert len(both) == len(measured) and len(merged) == len(measured)
    # the same checkpoints (the suite's tables were regenerated from the retrain the formats were measured on):
    # equal to the tables' printed precision (six significant digits)
    assert np.allclose(both["loss_16"], both["loss_16_suite"], rtol=0, atol=1e-5)
