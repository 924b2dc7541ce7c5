"""The seams hold: no import cycles inside ``src/earmark``, and no module uses another
module's underscore names.

Imports are read from the source (``ast``), module level and inside functions alike (a lazy
import is still a dependency); only those under ``if TYPE_CHECKING:`` are left out. Importing
``a.b.c`` also runs the packages ``a.b`` and ``a``, so those count as imported too, except
the packages the importing module sits in (Python is already running them).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` except the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, list[str], int]]:
    """``(module imported, names taken from it, line)`` for each import of a known module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(name, path).split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in known:
                continue
            names = [a.name for a in node.names]
            yield target, names, node.lineno
            for n in names:  # `from package import submodule`
                if f"{target}.{n}" in known:
                    yield f"{target}.{n}", [], node.lineno


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    mods = _modules(root, package)
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        own = _package_of(name, path).split(".")
        running = {".".join(own[:i]) for i in range(1, len(own) + 1)}
        for target, _, _ in _imports(name, path, known):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                step = ".".join(parts[:i])
                if step in known and step not in running and step != name:
                    graph[name].add(step)
    return graph


def import_cycles(root: Path, package: str) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    graph = import_graph(root, package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _members(tree: ast.AST) -> set[str]:
    """Names a module defines on its classes and objects: methods, class attributes,
    ``self._x = ...``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names |= {t.id for t in item.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


def _module_aliases(name: str, path: Path, known: set[str]) -> set[str]:
    """Local names bound to earmark modules (``from earmark import audio as audio_io``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.asname for a in node.names if a.asname and a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if f"{node.module}.{a.name}" in known:
                    out.add(a.asname or a.name)
    return out


def private_uses(root: Path, package: str) -> list[str]:
    """Uses of another module's underscore names: ``from earmark.x import _y``,
    ``module._y`` on an earmark module, and ``obj._y`` where ``_y`` is a method or attribute
    of another earmark module's classes and not of this module's."""
    mods = _modules(root, package)
    known = set(mods)
    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in mods.items()}
    members = {name: _members(tree) for name, tree in trees.items()}
    found = []
    for name, path in mods.items():
        rel = path.relative_to(root)
        for target, names, line in _imports(name, path, known):
            for n in names:
                if _private(n) and f"{target}.{n}" not in known:
                    found.append(f"{rel}:{line}: imports {n} from {target}")
        aliases = _module_aliases(name, path, known)
        elsewhere = set().union(*(d for m, d in members.items() if m != name))
        for node in ast.walk(trees[name]):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner in ("self", "cls"):
                continue
            if owner in aliases or (node.attr in elsewhere and node.attr not in members[name]):
                found.append(f"{rel}:{node.lineno}: uses .{node.attr}")
    return found


def test_no_import_cycles_in_earmark() -> None:
    assert import_cycles(SRC, "earmark") == []


def test_no_module_uses_another_modules_underscore_names() -> None:
    assert private_uses(SRC, "earmark") == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        ({"a.py": "import pkg.b\n", "b.py": "from pkg.a import f\n"}, ["pkg.a", "pkg.b"]),
        (  # a lazy import inside a function is a dependency too
            {"a.py": "def f():\n    from pkg import b\n", "b.py": "from pkg import a\n"},
            ["pkg.a", "pkg.b"],
        ),
        (  # a package whose __init__ imports the module that imports from it
            {"sub/__init__.py": "from pkg.sub.x import X\n", "sub/x.py": "from pkg.y import Y\n"}
            | {"y.py": "from pkg.sub.z import Z\n", "sub/z.py": ""},
            ["pkg.sub", "pkg.sub.x", "pkg.y"],
        ),
    ],
)
def test_the_cycle_check_finds_a_planted_cycle(
    tmp_path: Path, files: dict[str, str], cycle: list[str]
) -> None:
    _write(tmp_path / "pkg", {"__init__.py": "", **files})
    assert import_cycles(tmp_path, "pkg") == [cycle]


def test_the_cycle_check_ignores_type_checking_and_own_packages(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b.py": "from pkg.a import A\n",
        "sub/__init__.py": "from pkg.sub.x import X\n",
        "sub/x.py": "from pkg.sub.y import Y\n",  # running pkg.sub already: no cycle
        "sub/y.py": "",
    }
    _write(tmp_path / "pkg", files)
    assert import_cycles(tmp_path, "pkg") == []


def test_the_private_check_finds_planted_uses(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "def _helper():\n    pass\nclass A:\n    def _hook(self):\n        self._x = 1\n",
        "b.py": "from pkg.a import _helper\n",
        "c.py": "def f(obj):\n    return obj._hook()\n",
        "e.py": "from pkg import a\ndef g():\n    return a._helper(), object()._unrelated\n",
        "d.py": "class D:\n    def g(self, other):\n        return self._hook(), other._own\n"
        "    def _own(self):\n        pass\n",
    }
    _write(tmp_path / "pkg", files)
    found = private_uses(tmp_path, "pkg")
    assert found == [
        "pkg/b.py:1: imports _helper from pkg.a",
        "pkg/c.py:2: uses ._hook",
        "pkg/e.py:3: uses ._helper",
    ]
