"""The package's shape: stages as folders in data-flow order, no import upward, no circle,
no module too long to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "runner"

# Lower stages never import higher ones. Base modules (errors, files, distributed, console)
# sit under everything; the entry points (run, __main__, cli, inspect, compare, ...) on top.
STAGES = ["base", "config", "data", "model", "tasks", "train", "track", "entry"]
BASE = {"errors", "files", "distributed", "console"}
MAX_LINES = 400


def stage_of(module: str) -> str:
    parts = module.split(".")
    if module == "runner":  # the package's __init__: a version string, nothing to import
        return "base"
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES):
        return parts[1]
    return "base" if parts[-1] in BASE else "entry"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """runner modules imported anywhere in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("runner")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runner"):
            found.add(node.module)
            # `from runner.train import body_cache` imports the submodule
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").is_file():
                    found.add(candidate)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {m for m in imports_of(p) if m in MODULES and m != name}
         for name, p in MODULES.items()}


def test_every_module_sits_in_a_known_stage():
    folders = {p.parent.name for p in MODULES.values() if p.parent != PACKAGE}
    assert folders <= set(STAGES), f"unknown stage folders: {folders - set(STAGES)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_from_a_higher_stage(name):
    rank = STAGES.index(stage_of(name))
    upward = [m for m in GRAPH[name] if STAGES.index(stage_of(m)) > rank]
    assert not upward, f"{name} ({stage_of(name)}) imports higher stages: {upward}"


def test_no_import_circle():
    state: dict[str, str] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = "open"
        for dep in sorted(GRAPH[node]):
            if dep.startswith(node + "."):  # a package importing its own submodule
                continue
            if state.get(dep) == "open":
                cycle.extend(path[path.index(dep):] + [dep] if dep in path else [node, dep])
                return True
            if dep not in state and visit(dep, [*path, dep]):
                return True
        state[node] = "done"
        return False

    for name in sorted(GRAPH):
        if name not in state and visit(name, [name]):
            break
    assert not cycle, " -> ".join(cycle)


def test_the_layering_test_sees_an_upward_import(tmp_path):
    """The check itself works: a config module importing the training loop is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from runner.train.loop import Trainer\n")
    assert "runner.train.loop" in imports_of(bad)
    assert STAGES.index(stage_of("runner.train.loop")) > STAGES.index(stage_of("runner.config.x"))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_short_enough_to_read(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (limit {MAX_LINES}): split it"
