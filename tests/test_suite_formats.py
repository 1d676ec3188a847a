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
    before = path.read_bytes()
    assert cli.main(arguments) == 0
    assert path.read_bytes() == before
    capsys.readouterr()
    assert cli.main(["measure-suite", "--preset", "tiny", "--limit", "0", "--formats"]) == 2
    assert "--limit" in capsys.readouterr().err
