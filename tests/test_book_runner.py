"""The chapter runner's checks on its inputs (fast; the executing tests are in test_book.py)."""

import pytest

from qid.book import chapter_parameters, chapter_sources, load_parameters_file, main, run_book
from qid.paths import REPO_ROOT


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
