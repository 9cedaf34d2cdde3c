"""The project's layout rules, read from the source with `ast` (nothing is imported):

- no import circles among the project's modules (imports inside functions and under
  `if TYPE_CHECKING:` count: a circle of types is still a circle of design);
- the product (`worker`, `producers`) imports neither the tools (`medstream_tools`) nor the
  training code (`medstream_training`) - worker/cli.py names tool modules only as strings, for
  importlib - nor the training-only packages (torch, onnx, keras, sklearn, scipy);
- no module over MAX_LINES lines;
- no test helper defined twice: a top-level function or class name is defined by one test
  support module only (tests/support/, the chaos suite's helpers, medstream_tools/soak/), and
  free ports, wait_for and the worker subprocess have one home each.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("worker", "producers", "medstream_delivery", "medstream_tools", "medstream_training")
PRODUCT = ("worker", "producers", "medstream_delivery")
TOOLS = ("medstream_tools", "medstream_training")
TRAINING_ONLY = ("torch", "onnx", "keras", "sklearn", "scipy")
MAX_LINES = 300
# (path, package) -> why the product may import a training-only package there; only inside a
# function (lazily), never at module level.
OPTIONAL_IMPORTS = {
    ("producers/vitals_sources.py", "scipy"): "`produce vitals --mitbih` only: the ECG excerpt "
    "ships in the scipy wheel, R peaks via scipy.signal; without scipy a clear SourceError",
}
SUPPORT_DIRS = ("tests/support", "tests/chaos", "tests/integration", "medstream_tools/soak")
KNOWN_DUPLICATES: dict[str, str] = {}  # name -> the second module allowed to define it


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> dict[str, Path]:
    """{module name: path} of every module of the project's packages."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _nodes(tree: ast.AST, lazy: bool = True) -> Iterator[ast.AST]:
    """Every node (but those inside functions unless `lazy`)."""
    for node in ast.iter_child_nodes(tree):
        if not lazy and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        yield node
        yield from _nodes(node, lazy)


def imported_names(path: Path, module: str, lazy: bool = True) -> set[str]:
    """Absolute dotted names a module imports (`from a import b` gives `a.b` and
    `a`: b may be a submodule or a name; relative imports are resolved). `lazy`: with the
    imports inside functions."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in _nodes(ast.parse(path.read_text(), str(path)), lazy):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def import_graph() -> dict[str, set[str]]:
    """{module: project modules it imports}: each name maps to the longest project module
    prefix (a name inside a module is that module)."""
    files = project_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(path, module):
            parts = name.split(".")
            for n in range(len(parts), 0, -1):
                if (candidate := ".".join(parts[:n])) in files:
                    if candidate != module:
                        targets.add(candidate)
                    break
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_cycle_in(sorted(component), graph))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A concrete cycle through the component's first module (breadth-first, shortest)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return component


def _top(name: str) -> str:
    return name.split(".")[0]


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_cycle_finder_reports_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_product_imports_neither_tools_nor_training_code() -> None:
    bad = []
    for module, path in project_files().items():
        if _top(module) not in PRODUCT:
            continue
        rel, eager = str(path.relative_to(ROOT)), imported_names(path, module, lazy=False)
        for name in imported_names(path, module):
            top = _top(name)
            optional = (rel, top) in OPTIONAL_IMPORTS and name not in eager
            if top in TOOLS or (top in TRAINING_ONLY and not optional):
                bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_relative_and_lazy_imports_are_seen(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    source = pkg / "mod.py"
    source.write_text("from typing import TYPE_CHECKING\nfrom . import sib\nfrom .sub import x\n"
                      "if TYPE_CHECKING:\n    import typed\n"
                      "def f():\n    import torch.nn\n")
    names = imported_names(source, "pkg.mod")
    assert {"pkg.sib", "pkg.sub.x", "torch.nn", "typed"} <= names
    assert "torch.nn" not in imported_names(source, "pkg.mod", lazy=False)


def _python_files() -> Iterator[Path]:
    for top in (*PACKAGES, "tests"):
        yield from sorted((ROOT / top).rglob("*.py"))


def test_no_module_over_max_lines() -> None:
    long = {}
    for path in _python_files():
        rel = str(path.relative_to(ROOT))
        if (n := len(path.read_text().splitlines())) > MAX_LINES:
            long[rel] = n
    assert not long, f"over {MAX_LINES} lines (split them): {long}"


def _top_level_definitions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in tree.body if isinstance(node, defs)}


def _support_modules() -> list[Path]:
    return [p for d in SUPPORT_DIRS for p in sorted((ROOT / d).glob("*.py"))
            if not p.name.startswith("test_")]


def test_no_test_helper_defined_twice() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in _support_modules():
        for name in _top_level_definitions(path):
            where[name].append(str(path.relative_to(ROOT)))
    twice = {name: paths for name, paths in where.items()
             if len(paths) > 1 and not (name in KNOWN_DUPLICATES
                                        and KNOWN_DUPLICATES[name] in paths and len(paths) == 2)}
    assert not twice, f"defined in more than one support module: {twice}"


# The helpers that used to be written again and again, and their one home.
HOMES = {"free_port": "medstream_tools/ports.py", "free_ports": "medstream_tools/ports.py",
         "wait_for": "medstream_tools/soak/waiting.py",
         "WorkerProcess": "medstream_tools/soak/worker.py"}


def test_common_helpers_have_one_home() -> None:
    """No test module or tool writes its own free-port finder, wait_for or WorkerProcess."""
    stray = []
    for path in [*(ROOT / "tests").rglob("*.py"), *(ROOT / "medstream_tools").rglob("*.py")]:
        rel = str(path.relative_to(ROOT))
        everywhere = rel.startswith(("tests/", "medstream_tools/soak/"))  # elsewhere: ports only
        for name in _top_level_definitions(path):
            home = HOMES.get(name.lstrip("_")) if everywhere else None
            home = home or ("medstream_tools/ports.py" if "free_port" in name else None)
            if home is not None and rel != home:
                stray.append(f"{rel} defines {name} (use {home})")
    assert not stray, "\n".join(stray)


def test_test_modules_have_unique_names() -> None:
    # the test folders are not packages: pytest imports test modules by basename, and a second
    # tests/*/test_x.py fails the whole collection ("import file mismatch")
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
