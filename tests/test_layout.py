# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The package's layout holds: the core imports no method, no import cycle anywhere, each method in its folder with
one registration. The import graph is read from the source (every `import` statement, those inside functions
included), so an import that only runs on some path counts too."""

import ast
from pathlib import Path

import pytest

from zvp_trl.core.registry import method_specs


pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "zvp_trl"
BUILTIN_METHODS = ("rl_zvp", "erpo", "exgrpo", "grpo_ds", "greso")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports (`from X import name` counts X, and X.name when that is a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` imports module a.b.c, or its nearest package
                target = target.rpartition(".")[0] if "." in target else ""
            if target.startswith("zvp_trl") and target != module:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {module: _imports(module, path, modules) - {"zvp_trl"} for module, path in modules.items()}


def test_the_graph_sees_function_level_imports():
    graph = _graph()
    # scripts/train.py imports the CPU launch support inside a function only.
    assert "zvp_trl.launch.cpu_fsdp" in graph["zvp_trl.scripts.train"]
    assert "zvp_trl.core.parts" in graph["zvp_trl.methods.rl_zvp.part"]


def test_the_core_imports_no_method():
    graph = _graph()
    core = [module for module in graph if module.startswith("zvp_trl.core")]
    assert len(core) >= 10
    seen, stack = set(core), list(core)
    while stack:  # everything the core reaches, through any module
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    reached = sorted(module for module in seen if module.startswith("zvp_trl.methods"))
    assert reached == [], f"the core reaches method modules: {reached}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["e", "f"]]
    real = _graph()
    real["zvp_trl.core.registry"] = real["zvp_trl.core.registry"] | {"zvp_trl.core.composition"}
    assert ["zvp_trl.core.composition", "zvp_trl.core.registry"] in _cycles(real)


@pytest.mark.parametrize("name", BUILTIN_METHODS)
def test_each_method_lives_in_its_folder_with_one_registration(name):
    spec = method_specs()[name]
    folder = f"zvp_trl.methods.{name}"
    assert spec.module == folder
    for klass in (spec.part, spec.config, *spec.combined_with.values()):
        assert klass.__module__.startswith(folder + "."), (klass, folder)
    calls = [
        node
        for path in (PACKAGE / "methods").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register"
    ]
    registering = [
        path.parent.name
        for path in (PACKAGE / "methods").rglob("__init__.py")
        if "register(SPEC)" in path.read_text() and f'name="{name}"' in path.read_text()
    ]
    assert len(calls) == len(BUILTIN_METHODS) and registering == [name]


def test_nothing_outside_the_methods_names_a_method_module():
    graph = _graph()
    outside = {
        module: sorted(t for t in targets if t.startswith("zvp_trl.methods."))
        for module, targets in graph.items()
        if not module.startswith("zvp_trl.methods") and module != "zvp_trl"
    }
    assert {module: targets for module, targets in outside.items() if targets} == {}


def test_parts_read_no_trainer():
    """A method's code never names a trainer object: what a part reads and calls comes through its PartContext."""
    offenders = []
    for path in (PACKAGE / "methods").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "trainer":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .trainer")
            elif isinstance(node, ast.Name) and node.id == "trainer":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} trainer")
            elif isinstance(node, ast.arg) and node.arg == "trainer":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} argument trainer")
    assert offenders == []
    from zvp_trl.core.parts import MethodPart

    assert "trainer" not in vars(MethodPart) and "context" in MethodPart.__init__.__code__.co_varnames
