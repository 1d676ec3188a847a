"""The one runner that executes the book's chapters with papermill.

Each chapter's source of truth is its jupytext py:percent file in `notebooks/`; it is read in memory (papermill
cannot read `.py` notebooks itself), executed from the repository root with the given parameters, and written
to `chapters/NAME.ipynb`, which the Jupyter Book table of contents points at. Execution stops at the first
chapter with a failing cell. Parameters actually used, times and the commit go to `chapters/run_record.json`.

    python -m qid.chapters.runner                               # every chapter, default parameters
    python -m qid.chapters.runner --only 01_published_laws -p BOOTSTRAP_SAMPLES=20
    python -m qid.chapters.runner --parameters-file tests/small_parameters.yaml
    python -m qid.chapters.runner --prepare-site                # (make site) placeholders for chapters not executed, findings

Overrides of a chapter declared in `qid.chapters.params` are coerced and checked before anything executes. Fit
files that a chapter saves are rewritten only when a fitted number changes; their per-run provenance goes to
`chapters/fit_provenance/`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import yaml

from qid.common.atomicio import atomic_write_text
from qid.chapters.params import coerce_parameters
from qid.fitting.record import PROVENANCE_DIR_VARIABLE
from qid.common.paths import REPO_ROOT
from qid.common.provenance import git_commit, utc_now

DEFAULT_OUTPUT_DIR = "chapters"
CELL_TIMEOUT_SECONDS = 1200  # no single cell of a chapter may run longer than 20 minutes


def chapter_sources(root: Path = REPO_ROOT) -> list[Path]:
    """Chapters in book order: the paired py:percent sources in notebooks/, sorted by their numeric prefix."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))


def chapter_parameters(source: Path) -> list[str]:
    """Names assigned in the chapter's cell tagged `parameters` (the only tunable values of a chapter)."""
    import ast

    import jupytext

    for cell in jupytext.read(source).cells:
        if "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return [target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(target, ast.Name)]
    raise ValueError(f"{source}: no cell tagged 'parameters'")


def load_parameters_file(path: str | Path) -> dict[str, dict]:
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: malformed YAML ({error})") from error
    if not isinstance(content, dict) or not all(isinstance(value, dict) for value in content.values()):
        raise ValueError(f"{path}: expected a mapping of chapter name -> {{PARAMETER: value}}")
    return content


def execute_chapter(source: Path, output_dir: Path, parameters: dict, root: Path = REPO_ROOT) -> dict:
    """Execute one chapter; raises papermill's PapermillExecutionError on the first failing cell."""
    import jupytext
    import papermill

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    output_path = output_dir / f"{source.stem}.ipynb"
    started = time.perf_counter()
    papermill.execute_notebook(
        notebook,
        str(output_path),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(root),
        progress_bar=False,
        execution_timeout=CELL_TIMEOUT_SECONDS,
    )
    return {
        "chapter": source.stem,
        "parameters": parameters,
        "seconds": round(time.perf_counter() - started, 1),
        "finished": utc_now(),
    }


def run_book(
    root: Path = REPO_ROOT,
    output_dir: str | Path = DEFAULT_OUTPUT_DIR,
    parameters: dict[str, dict] | None = None,
    only: list[str] | None = None,
) -> list[dict]:
    """Execute chapters in order and write the run record. `parameters` maps chapter name -> overrides."""
    root = Path(root)
    output_dir = Path(output_dir) if Path(output_dir).is_absolute() else root / output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    parameters = parameters or {}
    sources = chapter_sources(root)
    known = {source.stem for source in sources}
    unknown = sorted((set(only or []) | set(parameters)) - known)
    if unknown:
        raise ValueError(f"unknown chapter(s) {', '.join(unknown)}; chapters: {', '.join(sorted(known))}")
    if only:
        sources = [source for source in sources if source.stem in only]
    for source in sources:
        unknown_names = sorted(set(parameters.get(source.stem, {})) - set(chapter_parameters(source)))
        if unknown_names:
            raise ValueError(f"chapter {source.stem} has no parameter(s) {', '.join(unknown_names)}; "
                             f"its parameters: {', '.join(chapter_parameters(source))}")
        if source.stem in parameters:  # a declared chapter's overrides are coerced and checked before anything runs
            parameters[source.stem] = coerce_parameters(source.stem, parameters[source.stem])

    record_path = output_dir / "run_record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    # Fits that a chapter saves are rewritten only when a number changes; their per-run provenance lands here.
    os.environ[PROVENANCE_DIR_VARIABLE] = str(output_dir / "fit_provenance")
    runs = []
    for source in sources:
        print(f"[qid.chapters.runner] executing {source.relative_to(root)}", flush=True)
        run = execute_chapter(source, output_dir, parameters.get(source.stem, {}), root)
        run["commit"] = git_commit()
        print(f"[qid.chapters.runner] {source.stem}: {run['seconds']} s", flush=True)
        record[source.stem] = run
        atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
        runs.append(run)
    return runs


PLACEHOLDER_NOTE = (
    "\n\n:::{{note}}\n**Not executed in this build.** This page shows the chapter's source without its results. "
    "Run `python -m qid.chapters.runner --only {name}` (or `make book`), then `make site`, to see them.\n:::\n"
)
_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`[^`]*`")


def placeholder_chapter(source: Path):
    """The chapter's unexecuted source as a notebook, marked at the top as not executed (no glued values)."""
    import jupytext

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["qid_placeholder"] = True
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = _GLUE_ROLE.sub("(not computed: chapter not executed)", cell.source)
    first = next((cell for cell in notebook.cells if cell.cell_type == "markdown"), None)
    if first is not None:
        title, _, rest = first.source.partition("\n")
        first.source = title + PLACEHOLDER_NOTE.format(name=source.stem) + rest
    return notebook


def prepare_site(root: Path = REPO_ROOT, output_dir: str | Path = DEFAULT_OUTPUT_DIR) -> list[str]:
    """Make `output_dir` buildable: every chapter not executed yet gets a placeholder (returns their names), and
    the landing page's findings (`findings.md` and its figure) are written from the chapters' glued values.

    A chapter counts as executed when `output_dir/NAME.ipynb` exists and is not itself a placeholder; a
    placeholder is rewritten each time, so it always shows the current source.
    """
    import nbformat

    root = Path(root)
    output_dir = Path(output_dir) if Path(output_dir).is_absolute() else root / output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    placeholders = []
    for source in chapter_sources(root):
        target = output_dir / f"{source.stem}.ipynb"
        if target.exists() and not nbformat.read(target, as_version=4).metadata.get("qid_placeholder"):
            continue
        atomic_write_text(target, nbformat.writes(placeholder_chapter(source)))
        placeholders.append(source.stem)
    from qid.chapters.findings import write_findings  # the landing page's findings, from what the chapters glued

    write_findings(root, output_dir)
    return placeholders


def _parse_assignment(text: str) -> tuple[str, object]:
    """NAME=VALUE with VALUE read as YAML (numbers, lists, strings)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qid.chapters.runner", description="Execute the book's chapters with papermill.")
    parser.add_argument("--root", default=str(REPO_ROOT), help="book root (holds notebooks/)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="where executed notebooks go (relative to root)")
    parser.add_argument("--parameters-file", help="YAML: chapter name -> {PARAMETER: value}")
    parser.add_argument("--only", nargs="+", metavar="CHAPTER", help="execute only these chapters (names without .py)")
    parser.add_argument("-p", "--parameter", action="append", type=_parse_assignment, default=[],
                        metavar="NAME=VALUE", help="override a parameter of the --only chapter(s)")
    parser.add_argument("--prepare-site", action="store_true",
                        help="execute nothing: give every chapter not executed yet a placeholder (run by `make site`)")
    args = parser.parse_args(argv)
    if args.prepare_site:
        placeholders = prepare_site(Path(args.root), args.output_dir)
        if placeholders:
            print(f"[qid.chapters.runner] not executed yet, shown as source: {', '.join(placeholders)}", flush=True)
        return 0

    import papermill

    try:
        parameters = load_parameters_file(args.parameters_file) if args.parameters_file else {}
        if args.parameter:
            if not args.only:
                raise ValueError("-p/--parameter needs --only to say which chapter(s) it applies to")
            for chapter in args.only:
                parameters.setdefault(chapter, {}).update(dict(args.parameter))
        run_book(Path(args.root), args.output_dir, parameters, args.only)
    except (ValueError, FileNotFoundError) as error:
        print(f"qid.chapters.runner: error: {error}", file=sys.stderr)
        return 2
    except papermill.PapermillExecutionError as error:
        print(f"qid.chapters.runner: a cell failed: {error.ename}: {error.evalue}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
