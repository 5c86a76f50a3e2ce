"""The package's layers import only downward and never in a circle, function-level imports included.

The graph is read from the source (``ast``), so an import hidden inside a function counts as much as one at the
top; imports under ``if TYPE_CHECKING:`` do not run and do not count. ``from PACKAGE import name`` counts as an
import of the module ``name`` comes from (a submodule, or the module a lazy ``_EXPORTS`` entry names).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "ulsam_search"

# Lowest first. A module may import its own layer and the layers before it. The search registries that config
# validates names against (objectives, samplers, schedulers, backends) sit below config; the rest of search above.
LAYERS = (
    ("ulsam_search.errors", "ulsam_search._io", "ulsam_search._lazy", "ulsam_search._registry"),
    ("ulsam_search.models",),
    ("ulsam_search.cost",),
    ("ulsam_search.data",),
    ("ulsam_search.train",),
    ("ulsam_search.search._private", "ulsam_search.search.objectives",
     "ulsam_search.search.samplers", "ulsam_search.search.schedulers", "ulsam_search.search.mo_asha",
     "ulsam_search.search.backends"),
    ("ulsam_search.config",),
    ("ulsam_search.search",),
    ("ulsam_search.ablation",),
    ("ulsam_search.report",),
    ("ulsam_search.workflows",),
    ("ulsam_search.cli",),
    ("ulsam_search",),  # the public facade: it exports from every layer and nothing imports it
)


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file for every module of the package rooted at ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import node that runs, wherever it is (skipping ``if TYPE_CHECKING:`` bodies)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in [child] + list(_imports(child)))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _lazy_exports(tree: ast.AST, package: str) -> dict[str, str]:
    """A package's ``_EXPORTS = {"name": ".module"}``, resolved to absolute module names."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            exports = ast.literal_eval(node.value)
            return {name: package + module if module.startswith(".") else module for name, module in exports.items()}
    return {}


def _direct_imports(tree: ast.AST, importer: str, own_package: str, modules, lazy) -> set[str]:
    """The package modules ``importer`` names in its import statements."""
    targets: set[str] = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = own_package.split(".")[:len(own_package.split(".")) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            targets.add(submodule if submodule in modules else lazy.get(base, {}).get(alias.name, base))
    found = set()
    for target in targets:
        while target and target not in modules:  # ``import a.b.c`` of a name, not a module
            target = target.rpartition(".")[0]
        if target and target != importer:  # else another library
            found.add(target)
    return found


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(direct, every): module -> the package modules it imports by name, and those plus their parent packages.

    Importing ``a.b.c`` runs ``a/b/__init__.py``: that counts for cycles; whether the ``__init__`` is light enough
    to sit below its importer is checked through the ``__init__``'s own imports.
    """
    modules = module_files(root)
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in modules.items()}
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    lazy = {name: _lazy_exports(trees[name], name) for name in packages}
    direct, every = {}, {}
    for importer, tree in trees.items():
        own_package = importer if importer in packages else importer.rpartition(".")[0]
        direct[importer] = _direct_imports(tree, importer, own_package, modules, lazy)
        every[importer] = set(direct[importer])
        for target in direct[importer]:
            parent = target.rpartition(".")[0]
            while parent and not importer.startswith(parent + ".") and importer != parent:
                every[importer].add(parent)
                parent = parent.rpartition(".")[0]
    return direct, every


def layer_of(module: str, layers=LAYERS) -> int:
    """The layer of the longest prefix that names ``module`` or a package above it."""
    best, rank = -1, None
    for index, names in enumerate(layers):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, rank = len(name), index
    if rank is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in tests/test_layers.py")
    return rank


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if layer_of(b, layers) > layer_of(a, layers))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_belongs_to_a_layer():
    for module in module_files(PACKAGE_DIR):
        layer_of(module)


def test_no_module_imports_a_later_layer():
    assert upward_imports(import_graph(PACKAGE_DIR)[0]) == []


def test_no_import_cycles():
    assert cycles(import_graph(PACKAGE_DIR)[1]) == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_finds_an_upward_import_hidden_in_a_function_and_a_cycle(tmp_path):
    package = _write(tmp_path, {
        "pkg/__init__.py": "from ._lazy import x\n_EXPORTS = {'run': '.top'}\n",
        "pkg/_lazy.py": "x = 1\n",
        "pkg/low.py": "def f():\n    from .top import g\n",
        "pkg/top.py": "from . import low\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .mid import h\n",
        "pkg/mid.py": "from pkg import run\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/a.py": "from ..mid import *\n",
    })
    layers = (("pkg._lazy",), ("pkg.low",), ("pkg.mid", "pkg.sub"), ("pkg.top",), ("pkg",))
    direct, every = import_graph(package)
    assert direct["pkg.top"] == {"pkg.low"}  # the TYPE_CHECKING import does not count
    assert direct["pkg.mid"] == {"pkg.top"}  # a lazy export resolves to the module that defines it
    assert direct["pkg.sub.a"] == {"pkg.mid"}
    assert upward_imports(direct, layers) == ["pkg.low -> pkg.top", "pkg.mid -> pkg.top"]
    assert cycles(every) == [["pkg.low", "pkg.top"]]


def test_the_checker_counts_a_parent_package_for_cycles_only(tmp_path):
    package = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "from .sub import names\n",
        "pkg/sub/__init__.py": "from . import heavy\n",
        "pkg/sub/names.py": "",
        "pkg/sub/heavy.py": "from .. import low\n",
    })
    layers = (("pkg.sub.names",), ("pkg.low",), ("pkg.sub",), ("pkg",))
    direct, every = import_graph(package)
    assert direct["pkg.low"] == {"pkg.sub.names"} and every["pkg.low"] == {"pkg.sub.names", "pkg.sub"}
    assert upward_imports(direct, layers) == []
    assert cycles(every) == [["pkg.low", "pkg.sub", "pkg.sub.heavy"]]


@pytest.mark.parametrize("module", ["ulsam_search", "ulsam_search.config", "ulsam_search.data",
                                    "ulsam_search.train.settings"])
def test_importing_the_package_or_reading_a_config_imports_no_heavy_library(module):
    code = (f"import sys, {module}\n"
            "print(sorted(m for m in ('torch', 'ray', 'optuna', 'thop', 'pandas') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
