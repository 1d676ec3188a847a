"""The package's architecture, read from its source with `ast` (nothing is imported): wings, direction, no circles.

Wings and what each may import (the docstring of `qid/__init__.py` says why):

    cli, chapters  -> every wing          suite   -> measure, common
    fitting        -> laws, common        measure -> common
    laws           -> common              common  -> nothing of qid

Every import counts, at module level or inside a function (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qid"
ALLOWED = {
    "common": {"common"},
    "measure": {"measure", "common"},
    "laws": {"laws", "common"},
    "fitting": {"fitting", "laws", "common"},
    "suite": {"suite", "measure", "common"},
    "chapters": {"chapters", "suite", "measure", "fitting", "laws", "common"},
    "cli": {"cli", "chapters", "suite", "measure", "fitting", "laws", "common"},
}
TOP_LEVEL_FILES = {"__init__.py", "__main__.py", "cli.py"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, package): path for path in sorted(package.rglob("*.py"))}


def wing_of(module: str) -> str | None:
    """'qid.measure.sweep' -> 'measure'; 'qid.cli' and 'qid.cli.x' -> 'cli'; 'qid', 'qid.__main__' -> None."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] == "__main__":
        return None
    return parts[1]


def imports_of(path: Path, modules: set[str]) -> list[tuple[str, list[str], int]]:
    """(imported qid module, names taken from it, line) for every import in the file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.split(".")[0] == "qid"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qid":
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:  # `from qid.measure import sweep`: the module itself
                    found.append((submodule, [], node.lineno))
                else:
                    found.append((node.module, [alias.name], node.lineno))
    return found


def dependency_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = package_modules(package)
    return {name: {target for target, _, _ in imports_of(path, set(modules)) if target != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def direction_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in graph.items():
        wing = wing_of(source)
        for target in targets:
            target_wing = wing_of(target)
            if wing is None or target_wing is None:
                continue
            if target_wing not in ALLOWED.get(wing, set()):
                bad.append(f"{source} imports {target} ({wing} may import only {sorted(ALLOWED.get(wing, ()))})")
    return bad


def private_imports(package: Path = PACKAGE) -> list[str]:
    """`from qid.x import _name`, or `alias._name` on an imported qid module, across modules."""
    modules = package_modules(package)
    bad = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qid"):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in modules:
                        aliases.add(alias.asname or alias.name)
                    elif alias.name.startswith("_"):
                        bad.append(f"{name}:{node.lineno} imports private {node.module}.{alias.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{name}:{node.lineno} uses private {node.value.id}.{node.attr}")
    return bad


# --------------------------------------------------------------------------------------------- the rules
def test_only_the_entry_points_live_directly_under_qid():
    assert {path.name for path in PACKAGE.glob("*.py")} <= TOP_LEVEL_FILES
    wings = {path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").is_file()}
    assert wings <= set(ALLOWED), f"unknown wing(s) {wings - set(ALLOWED)}: add them to ALLOWED with their rules"


def test_every_wing_says_what_it_owns_and_may_import():
    for wing in (path for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()):
        docstring = ast.get_docstring(ast.parse((wing / "__init__.py").read_text(encoding="utf-8")))
        assert docstring and "import" in docstring, f"{wing}/__init__.py: a docstring saying what it owns and may import"


def test_no_import_circle():
    assert find_cycle(dependency_graph()) is None, f"import circle: {' -> '.join(find_cycle(dependency_graph()))}"


def test_imports_follow_the_wings_direction():
    assert direction_violations(dependency_graph()) == []


def test_no_private_name_crosses_a_module():
    assert private_imports() == []


# ---------------------------------------------------------------------------- the checks can fail
def test_the_checks_catch_a_circle_a_wrong_direction_and_a_private_import(tmp_path):
    package = tmp_path / "qid"
    for folder, files in {"measure": {"a.py": "from qid.suite import b\n"},
                          "suite": {"b.py": "def f():\n    from qid.measure import a\n    return a._hidden\n"},
                          "laws": {"c.py": "from qid.fitting.d import _helper\n"},
                          "fitting": {"d.py": "_helper = 1\n"}}.items():
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text('"""may import"""\n')
        for file, text in files.items():
            (package / folder / file).write_text(text)
    graph = dependency_graph(package)
    assert find_cycle(graph) in (["qid.measure.a", "qid.suite.b", "qid.measure.a"],
                                 ["qid.suite.b", "qid.measure.a", "qid.suite.b"])
    violations = direction_violations(graph)
    assert any("qid.measure.a imports qid.suite.b" in line for line in violations)
    assert any("qid.laws.c imports qid.fitting.d" in line for line in violations)
    assert not any(line.startswith("qid.suite.b") for line in violations)  # suite may import measure
    private = private_imports(package)
    assert any("private qid.fitting.d._helper" in line for line in private)
    assert any("private a._hidden" in line for line in private)


@pytest.mark.parametrize("module, wing", [("qid.measure.sweep", "measure"), ("qid.cli", "cli"),
                                          ("qid.cli.fit_command", "cli"), ("qid", None), ("qid.__main__", None)])
def test_wing_of(module, wing):
    assert wing_of(module) == wing
