"""The packages of ``src/`` import only downward: no import cycle, no reaching into others' internals.

The graph is read from the source with ``ast``, not by importing anything, so it sees every import
statement wherever it is: at module level, inside a function (a lazy import that only hides a cycle
is still a cycle), inside ``try``. The only imports left out are those under ``if TYPE_CHECKING:``,
which never run and so cannot make a cycle at run time; annotations may name any module.

Importing ``a.b.c`` runs ``a/__init__``, ``a/b/__init__`` and ``a.b.c``, so an import adds an edge to
the module and to each package above it, except the packages above the importing module itself
(they were already imported before it). A plugin loaded through an entry point by name is not an
import statement and adds no edge: that is how the engine stays ignorant of any provider or sink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "deploy_fetcher"


@dataclass(frozen=True)
class Import:
    """One import statement's target, as a module of the graph."""

    module: str
    line: int


def _modules(src: Path, root: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree, except the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _statements(other)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _statements(child)


def _imports(name: str, path: Path, modules: dict[str, Path], root: str) -> list[Import]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[Import] = []
    for node in _statements(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # ``from pkg import sub`` imports the submodule ``pkg.sub``; a name is taken from ``pkg``.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        for target in targets:
            if target == root or target.startswith(root + "."):
                known = target
                while known not in modules:
                    known = known.rpartition(".")[0]
                out.append(Import(known, node.lineno))
    return out


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph(src: Path = SRC, root: str = ROOT) -> dict[str, dict[str, int]]:
    """Module → {module it causes to be imported: line of the first statement that does}."""
    modules = _modules(src, root)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        already = _ancestors(name)
        for found in _imports(name, path, modules, root):
            for target in {found.module} | (_ancestors(found.module) - already):
                if target != name:
                    edges.setdefault(target, found.line)
        graph[name] = edges
    return graph


class _Tarjan:
    """Strongly connected components of a graph, in one depth-first walk."""

    def __init__(self, graph: dict[str, dict[str, int]]) -> None:
        self.graph = graph
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.stack: list[str] = []
        self.on_stack: set[str] = set()
        self.found: list[list[str]] = []

    def visit(self, node: str) -> None:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)
        for target in self.graph.get(node, {}):
            if target not in self.index:
                self.visit(target)
                self.low[node] = min(self.low[node], self.low[target])
            elif target in self.on_stack:
                self.low[node] = min(self.low[node], self.index[target])
        if self.low[node] == self.index[node]:
            component = [self.stack.pop()]
            while component[-1] != node:
                component.append(self.stack.pop())
            self.on_stack.difference_update(component)
            if len(component) > 1:
                self.found.append(sorted(component))


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted."""
    walk = _Tarjan(graph)
    for node in sorted(graph):
        if node not in walk.index:
            walk.visit(node)
    return walk.found


def _describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    return "\n".join(
        f"  {source} -> {target} (line {line})"
        for source in component
        for target, line in sorted(graph[source].items())
        if target in members
    )


def private_reaches(src: Path = SRC, root: str = ROOT) -> list[str]:
    """Imports of a private module (``_name``) by a module outside the package that owns it."""
    modules = _modules(src, root)
    found: list[str] = []
    for name, path in modules.items():
        for imported in _imports(name, path, modules, root):
            parts = imported.module.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_")]
            if not private:
                continue
            owner = ".".join(parts[: private[0]])
            if name != owner and not name.startswith(owner + "."):
                found.append(f"{name}:{imported.line} imports {imported.module}")
    return found


# -- the checks -----------------------------------------------------------------------------------
def test_src_has_no_import_cycle() -> None:
    """No module of src/ takes part in an import cycle, lazy imports included."""
    graph = import_graph()
    found = cycles(graph)
    assert [] == found, "import cycles:\n" + "\n\n".join(_describe(c, graph) for c in found)


def test_no_module_imports_another_package_s_private_module() -> None:
    """A private module (``_x``) is imported only from inside the package that holds it."""
    assert [] == private_reaches()


def test_the_graph_reaches_the_whole_package() -> None:
    """The graph holds every module of src/ and follows a package's init to its modules."""
    graph = import_graph()
    assert len(list((SRC / ROOT).rglob("*.py"))) == len(graph)
    assert "deploy_fetcher.engine" in graph["deploy_fetcher.daemon"]
    assert "deploy_fetcher.engine.runtime" in graph["deploy_fetcher.engine"]


# -- the checker is checked on a small package of its own ------------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    """A lazy import inside a function closes a cycle as surely as one at the top."""
    src = _package(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "def f():\n    from pkg.high import g\n    return g\n",
            "high.py": "from pkg import low\n",
        },
    )
    assert [["pkg.high", "pkg.low"]] == cycles(import_graph(src, "pkg"))


def test_a_package_init_importing_its_importer_is_a_cycle(tmp_path: Path) -> None:
    """``b/__init__`` importing ``a`` while ``a`` imports ``b.x`` is a cycle through b's init."""
    src = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg.b.x import y\n",
            "b/__init__.py": "from pkg import a\n",
            "b/x.py": "y = 1\n",
        },
    )
    assert [["pkg.a", "pkg.b"]] == cycles(import_graph(src, "pkg"))


def test_type_checking_imports_and_own_ancestors_make_no_cycle(tmp_path: Path) -> None:
    """Annotation-only imports never run, and a module's own packages are imported before it."""
    src = _package(
        tmp_path,
        {
            "__init__.py": "from pkg.sub.mod import thing\n",
            "sub/__init__.py": "",
            "sub/mod.py": "thing = 1\n",
            "other.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.user import User\n"
            ),
            "user.py": "from pkg import other\n",
        },
    )
    assert [] == cycles(import_graph(src, "pkg"))


def test_reaching_into_another_package_s_private_module_is_found(tmp_path: Path) -> None:
    """``a`` importing ``b._impl`` is named; ``b.c`` importing its own ``b._impl`` is not."""
    src = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "\n\nfrom pkg.b._impl import x\n",
            "b/__init__.py": "",
            "b/_impl.py": "x = 1\n",
            "b/c.py": "from pkg.b._impl import x\n",
        },
    )
    assert ["pkg.a:3 imports pkg.b._impl"] == private_reaches(src, "pkg")
