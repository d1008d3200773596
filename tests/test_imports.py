"""No import circles between our modules or folders, and the folders import only downward.

docs/design.md §2 layers the packages: ``domain`` ← ``store`` ← ``feeds`` ← ``dashboard`` ←
``layouts``, with the composition root (``gridwall/``, ``app.py``) on top. A circle hidden by an
import inside a function still couples the modules both ways (neither can be read, tested or moved
alone), so every import counts here: module level, inside functions and under ``TYPE_CHECKING``.
The graph is built from the source with ``ast`` (nothing is imported), so the test is fast and
names the files of each circle it finds.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "store", "feeds", "dashboard", "layouts", "gridwall")  # the shipped folders
TOP_MODULES = ("app",)  # shipped single modules (pyproject: py-modules)
ROOTS = ("gridwall", "app")  # the composition root: may import anything

# folder → the folders of ours it may import (itself is always allowed)
ALLOWED: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "store": frozenset({"domain"}),
    "feeds": frozenset({"domain", "store"}),
    "dashboard": frozenset({"domain", "store", "feeds"}),
    "layouts": frozenset({"domain", "store", "feeds", "dashboard"}),
}

# Known edges that break the rules until the change that removes them lands; each names its module
# pair and why it is still here. Remove a line when its edge is gone (a stale line fails the test).
KNOWN: dict[tuple[str, str], str] = {
}


def module_files() -> dict[str, Path]:
    """Every shipped module by dotted name (``feeds.api``; a package by its ``__init__``)."""
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        base = ROOT / pkg
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    for name in TOP_MODULES:
        if (ROOT / f"{name}.py").is_file():
            out[name] = ROOT / f"{name}.py"
    return out


def _resolve(target: str, modules: Mapping[str, Path]) -> str | None:
    """The longest known module a dotted import names (``feeds.api.X`` → ``feeds.api``)."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The modules of ours that ``name`` imports anywhere in its source (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the submodule pkg.mod when there is one
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            targets = [targets[i] for i in range(len(targets) - 1) if targets[i] in modules] or [base]
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != name:
                found.add(resolved)
    return found


def module_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports."""
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def folder_of(module: str) -> str:
    """The top folder of a module (``feeds.sources.geolife`` → ``feeds``; ``app`` → ``app``)."""
    return module.partition(".")[0]


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _describe(comp: list[str], graph: Mapping[str, Iterable[str]]) -> str:
    members = set(comp)
    edges = sorted(f"{a} → {b}" for a in comp for b in graph.get(a, ()) if b in members)
    return f"{' ↔ '.join(comp)} ({'; '.join(edges)})"


def _without_known(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in bs if (a, b) not in KNOWN} for a, bs in graph.items()}


def test_no_module_cycles() -> None:
    """No two modules import each other, directly or around a longer circle (known exceptions aside)."""
    graph = _without_known(module_graph())
    found = cycles(graph)
    assert not found, "import circles between modules:\n" + "\n".join(_describe(c, graph) for c in found)


def test_no_folder_cycles() -> None:
    """The folders form no circle (e.g. ``dashboard`` ↔ ``layouts``), known exceptions aside."""
    graph = _without_known(module_graph())
    folders: dict[str, set[str]] = {}
    for a, bs in graph.items():
        fa = folder_of(a)
        folders.setdefault(fa, set()).update(folder_of(b) for b in bs if folder_of(b) != fa)
    found = cycles(folders)
    assert not found, "import circles between folders:\n" + "\n".join(_describe(c, folders) for c in found)


def test_folders_import_only_downward() -> None:
    """Each folder imports only the folders below it (design.md §2); the composition root anything."""
    wrong = []
    for a, bs in _without_known(module_graph()).items():
        fa = folder_of(a)
        if fa in ROOTS:
            continue
        for b in sorted(bs):
            fb = folder_of(b)
            if fb != fa and fb not in ALLOWED.get(fa, frozenset()):
                wrong.append(f"{a} → {b} ({fa} may import only {sorted(ALLOWED.get(fa, ())) or 'itself'})")
    assert not wrong, "imports against the folder rules:\n" + "\n".join(sorted(wrong))


def test_known_exceptions_still_exist() -> None:
    """Every known exception is still an edge: a removed one must leave the list (and the rule holds)."""
    graph = module_graph()
    stale = [f"{a} → {b}: {why}" for (a, b), why in KNOWN.items() if b not in graph.get(a, set())]
    assert not stale, "known exceptions no longer in the code, remove them from KNOWN:\n" + "\n".join(stale)


def test_the_graph_sees_imports_inside_functions(tmp_path: Path) -> None:
    """An import inside a function, a relative import and ``from pkg import module`` all count."""
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "__init__.py").write_text("")
    (src / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (src / "b.py").write_text("from . import c\n")
    (src / "c.py").write_text("import pkg.a\n")
    modules = {"pkg": src / "__init__.py", **{f"pkg.{m}": src / f"{m}.py" for m in "abc"}}
    graph = {n: imports_of(n, p, modules) for n, p in modules.items()}
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
