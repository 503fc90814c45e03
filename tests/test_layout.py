"""The import layers: no cycles between modules, and no library module imports the command line.

The graph is read from the source (every ``import`` and ``from ... import``, at module level or
inside a function), so an import cycle that is only "broken" by a function-level import still
counts: it means the two modules each need the other, which the layout forbids.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "vision_backbones"
CLI = f"{PACKAGE}.cli"

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the first such import}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module ``name`` refers to: itself, else its longest prefix that is a module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.AST, module: str, is_package: bool, modules: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (target := _resolve(alias.name, modules)) is not None:
                yield target
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: from the module's own package upwards
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        for alias in node.names:  # ``from pkg import submodule`` imports the submodule
            if (
                target := _resolve(f"{base}.{alias.name}", modules)
                if f"{base}.{alias.name}" in modules
                else _resolve(base, modules)
            ) is not None:
                yield target


def import_graph(root: Path = SRC, package: str = PACKAGE) -> Graph:
    """Every module under ``root/package`` and the modules of the same tree it imports, anywhere in its code."""
    files = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    modules = set(files)
    graph: Graph = {}
    for module, path in files.items():
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for target in _imported(node, module, path.name == "__init__.py", modules):
                if target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: Graph, group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    return [*paths[node], start]
                if target in group and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group always has one


def describe(graph: Graph, cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle)) + f" -> {cycle[-1]}"


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = [describe(graph, cycle) for cycle in find_cycles(graph)]
    assert not cycles, "import cycles under src/:\n  " + "\n  ".join(cycles)


def test_library_modules_never_import_the_command_line() -> None:
    graph = import_graph()
    offenders = [
        f"{module} imports {target} (line {line})"
        for module, edges in graph.items()
        if not (module == CLI or module.startswith(f"{CLI}."))
        for target, line in edges.items()
        if target == CLI or target.startswith(f"{CLI}.")
    ]
    assert not offenders, "library modules importing the CLI:\n  " + "\n  ".join(offenders)


def _write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_a_function_level_import_is_found_and_named(tmp_path: Path) -> None:
    _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg.b import helper\n",
            "b.py": "def helper():\n    from . import a\n",
            "c.py": "import pkg.a\n",  # imports into the cycle, is not part of it
            "sub/__init__.py": "from pkg.sub.d import x\n",
            "sub/d.py": "from .. import c\nx = 1\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.b"] == {"pkg.a": 2} and graph["pkg.sub.d"] == {"pkg.c": 1}
    cycles = find_cycles(graph)
    assert cycles == [["pkg.a", "pkg.b", "pkg.a"]]
    assert describe(graph, cycles[0]) == "pkg.a (line 1) -> pkg.b (line 2) -> pkg.a"


@pytest.mark.parametrize("text", ["from pkg import a\n", "import pkg.a.inner\n", "from .a import name\n"])
def test_every_import_form_is_an_edge(tmp_path: Path, text: str) -> None:
    _write_package(tmp_path, {"__init__.py": "", "a.py": "", "b.py": text})
    assert import_graph(tmp_path, "pkg")["pkg.b"] == {"pkg.a": 1}
