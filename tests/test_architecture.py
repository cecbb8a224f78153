"""The import rules of the README's architecture section, read from every module's imports (ast), lazy ones included."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "memobert"
MODEL_LAYER = {"memobert.configuration_memobert", "memobert.modeling_memobert", "memobert.kernels"}
SCRIPT_FOLDERS = ("pretrain", "prompt_tuning", "preprocessing", "baselines", "benchmarks", "examples", "tests")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; `from X import y` counts X and X.y, which may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
IMPORTS = {name: {m for m in imports_of(path) if m in MODULES} for name, path in MODULES.items()}


def unit(module: str) -> str:
    """The layer a module belongs to: its subpackage (memobert.data, ...) or its top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_model_imports_nothing_of_ours_outside_the_model_layer():
    for module in MODEL_LAYER:
        assert module in MODULES
        outside = {m for m in IMPORTS[module] if m not in MODEL_LAYER and m != "memobert"}
        assert not outside, f"{module} imports {sorted(outside)}: the model must be usable alone"


def test_data_imports_only_data():
    for module, imported in IMPORTS.items():
        if unit(module) == "memobert.data":
            outside = {m for m in imported if unit(m) != "memobert.data" and m != "memobert"}
            assert not outside, f"{module} imports {sorted(outside)}: data/ uses only the schema and label definitions"


def test_evaluation_imports_only_the_label_definitions():
    for module, imported in IMPORTS.items():
        if unit(module) == "memobert.evaluation":
            outside = {m for m in imported if unit(m) != "memobert.evaluation" and m not in ("memobert", "memobert.data",
                                                                                          "memobert.data.labels")}
            assert not outside, f"{module} imports {sorted(outside)}"


def test_preprocessing_never_imports_training_code():
    forbidden = {"memobert.training", "memobert.downstream", "memobert.objectives", "memobert.baselines",
                 "memobert.demo"}
    for module, imported in IMPORTS.items():
        if unit(module) in ("memobert.preprocessing", "memobert.encoders"):
            bad = {m for m in imported if unit(m) in forbidden}
            assert not bad, f"{module} imports {sorted(bad)}"


def test_nothing_outside_the_baselines_imports_a_baseline_by_name():
    for module, imported in IMPORTS.items():
        if unit(module) != "memobert.baselines":
            named = {m for m in imported if m.startswith("memobert.baselines.")}
            assert not named, f"{module} imports {sorted(named)}: reach baselines through the memobert.baselines registry"


def test_the_library_imports_no_script():
    for module, path in MODULES.items():
        for imported in imports_of(path):
            assert imported.split(".")[0] not in SCRIPT_FOLDERS, f"{module} imports the script module {imported}"


def test_no_import_cycles_between_layers():
    graph = defaultdict(set)
    for module, imported in IMPORTS.items():
        if module == "memobert":  # the package facade re-exports the model and registers the tasks
            continue
        for other in imported:
            if other != "memobert" and unit(other) != unit(module):
                graph[unit(module)].add(unit(other))
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_rules_see_the_modules_they_are_about():
    """The rules above would pass vacuously if module discovery broke."""
    assert {"memobert.data.folds", "memobert.downstream.runner", "memobert.baselines.mfn"} <= set(MODULES)
    assert "memobert.baselines" in IMPORTS["memobert.downstream.systems"]
    assert "memobert.configuration_memobert" in IMPORTS["memobert.modeling_memobert"]
