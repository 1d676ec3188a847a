"""The chapter runner's checks on its inputs (fast; the executing tests are in test_book.py)."""

import pytest

from qid.chapters.runner import chapter_parameters, chapter_sources, load_parameters_file, main, run_book
from qid.common.paths import REPO_ROOT


def test_parameters_of_a_chapter_are_read_from_its_parameters_cell():
    names = chapter_parameters(REPO_ROOT / "notebooks" / "01_published_laws.py")
    assert "VOCAB_SIZE" in names and "TOLERANCE" in names


def test_unknown_chapter_or_parameter_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="unknown chapter"):
        run_book(REPO_ROOT, tmp_path, only=["99_nope"])
    with pytest.raises(ValueError, match="has no parameter.*VOCABSIZE"):
        run_book(REPO_ROOT, tmp_path, {"01_published_laws": {"VOCABSIZE": 3}})
    assert not list(tmp_path.glob("*.ipynb"))


def test_malformed_parameters_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text("01_published_laws: [unclosed\n")
    with pytest.raises(ValueError, match="malformed YAML"):
        load_parameters_file(path)
    path.write_text("- just a list\n")
    assert main(["--parameters-file", str(path)]) == 2
    assert "expected a mapping" in capsys.readouterr().err


def test_parameter_override_needs_a_chapter(capsys):
    assert main(["-p", "TOLERANCE=0.1"]) == 2
    assert "needs --only" in capsys.readouterr().err


def test_chapters_are_numbered_in_book_order():
    names = [source.stem for source in chapter_sources()]
    assert names == sorted(names) and all(name[:2].isdigit() for name in names)


def test_a_fit_file_is_rewritten_only_when_a_fitted_number_changes(tmp_path, monkeypatch):
    """Two builds in a row leave data/fits/*.json untouched: time stamps and run times go to the build output."""
    import json

    from qid.fitting.fit import fit_law, synthetic_table
    from qid.fitting.record import PROVENANCE_DIR_VARIABLE, load_fit
    from qid.laws.registry import get_law

    law = get_law("ouyang_per_bit")
    truth = dict(k=1e-5, alpha=0.35, beta=0.67)
    table = synthetic_table(law, truth, {"N": [1e8, 1e9, 1e10], "D": [1e10, 1e11, 1e12]}, noise=0.05, seed=0)
    path = tmp_path / "fit.json"
    record_dir = tmp_path / "build" / "fit_provenance"
    monkeypatch.setenv(PROVENANCE_DIR_VARIABLE, str(record_dir))
    first = fit_law(law, table, seed=0)
    first.save(path)
    committed = path.read_bytes()

    again = fit_law(law, table, seed=0)  # a second build: new time stamp and run time, same numbers
    again.provenance = {**again.provenance, "created": "2099-01-01T00:00:00Z", "git_commit": "other+dirty"}
    again.starts = {**again.starts, "seconds": 123.0}
    again.save(path)
    assert path.read_bytes() == committed, "an unchanged fit must not rewrite its file"
    record = json.loads((record_dir / "fit.json").read_text())
    assert record["rewritten"] is False and record["provenance"]["created"] == "2099-01-01T00:00:00Z"

    changed = load_fit(path)
    # beyond the rewrite tolerance (relative 1e-5, qid.fitting.record): numerical noise below it is not a change
    changed.params = {**changed.params, "alpha": changed.params["alpha"] * (1 + 1e-3)}
    changed.save(path)
    assert path.read_bytes() != committed, "a changed fitted number must be written"
    assert json.loads((record_dir / "fit.json").read_text())["rewritten"] is True


def test_unexecuted_chapters_become_marked_placeholders_and_executed_ones_are_kept(tmp_path):
    import nbformat

    from qid.chapters.runner import prepare_site

    (tmp_path / "01_published_laws.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    placeholders = prepare_site(REPO_ROOT, tmp_path)
    expected = [source.stem for source in chapter_sources() if source.stem != "01_published_laws"]
    assert placeholders == expected
    notebook = nbformat.read(tmp_path / f"{expected[0]}.ipynb", as_version=4)
    assert notebook.metadata["qid_placeholder"] is True
    assert "Not executed in this build" in notebook.cells[0].source
    assert f"--only {expected[0]}" in notebook.cells[0].source
    assert nbformat.read(tmp_path / "01_published_laws.ipynb", as_version=4).cells == []  # executed: kept
    assert prepare_site(REPO_ROOT, tmp_path) == expected  # placeholders are refreshed, never taken as executed
