"""Every package's public face, and the import rules around it (httpx's test of the same name).

Each package under `console` lists its public members in a sorted `__all__`; callers import only
the package, never the modules behind it; no two modules of `console` import each other, directly
or round a longer loop, so any module can be imported first.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

import console.upstream

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "console"
UPSTREAM = "console.upstream"
# Every package of console, found on disk so a new one is covered from its first commit.
PACKAGES = sorted(f"console.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py"))

# Files still importing the upstream package's private modules until they switch to
# `from ..upstream import …` (the engine and web layer are the lead's). Empty this set then.
# Tests and bench/ are not scanned: they test and measure the private units on purpose.
LEGACY_IMPORTERS: set[str] = set()  # every caller goes through console.upstream now


# -- the public face ---------------------------------------------------------------------------

def test_every_package_is_covered():
    assert PACKAGES == ["console.captioning", "console.config", "console.engine", "console.messages", "console.review",
                        "console.saving", "console.sources", "console.upstream", "console.web"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_exists(name):
    package = importlib.import_module(name)
    missing = [member for member in package.__all__ if not hasattr(package, member)]
    assert missing == []


def defined_inside(value: object, package: str) -> bool:
    """Return False for what a package imported from elsewhere (Path, Flask, another package's class)."""
    module = getattr(value, "__module__", None)
    return not isinstance(module, str) or module == package or module.startswith(package + ".")


def by_name(member: str) -> tuple[str, str]:
    """Sort key of `__all__`: by name ignoring case, upper case first between equals (JOURNAL, Journal)."""
    return member.casefold(), member


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_holds_every_public_member(name):
    package = importlib.import_module(name)
    public = [member for member, value in vars(package).items()
              if not member.startswith("_") and not isinstance(value, types.ModuleType) and defined_inside(value, name)]
    assert package.__all__ == sorted(package.__all__, key=by_name)
    assert sorted(public, key=by_name) == package.__all__


def test_the_error_tree_has_one_root():
    errors = [getattr(console.upstream, name) for name in console.upstream.__all__ if name.endswith(("Error", "Error_"))]
    assert all(issubclass(error, console.upstream.UpstreamError) for error in errors)
    assert issubclass(console.upstream.ProfileProblem, console.upstream.UpstreamError)


# -- reading the sources ---------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(path: Path) -> set[str]:
    """Return the modules `path` imports when it is imported (not inside functions or TYPE_CHECKING)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def legacy(relative: str) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in LEGACY_IMPORTERS)


# -- nobody reaches behind the public face -----------------------------------------------------

def private_importers(name: str) -> dict[str, list[str]]:
    """Return {file: private modules of package `name` it imports} for files outside the package."""
    exported = {f"{name}.{member}" for member in importlib.import_module(name).__all__}  # `presets` the function
    files = [*PACKAGE.rglob("*.py"), ROOT / "app.py"]
    found = {}
    for path in sorted(files):
        if module_name(path) == name or module_name(path).startswith(name + "."):
            continue
        private = sorted(m for m in top_level_imports(path) if m.startswith(name + ".") and m not in exported)
        if private:
            found[path.relative_to(ROOT).as_posix()] = private
    return found


@pytest.mark.parametrize("name", PACKAGES)
def test_only_the_public_face_is_imported_from_outside(name):
    offenders = {path: names for path, names in private_importers(name).items() if not legacy(path)}
    assert offenders == {}, f"import these from {name} instead"


# -- no import cycles -------------------------------------------------------------------------------

def import_graph() -> dict[str, set[str]]:
    """Return module -> modules of `console` it makes Python import (parent packages included)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        for imported in top_level_imports(path):
            parts = imported.split(".")
            # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless they are already running.
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[name] = {t for t in targets if t in MODULES and t != name and t not in ancestors}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                strongconnect(target)
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
            strongconnect(node)
    return found


def test_no_import_cycles_among_console_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_netguard_stands_alone():
    assert not [m for m in import_graph()["console.netguard"] if m.startswith(UPSTREAM)]


def test_every_module_imports_first_in_a_fresh_interpreter():
    names = sorted(name for name in MODULES if not name.endswith("__main__"))
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for key in [k for k in sys.modules if k == 'console' or k.startswith('console.')]:\n"
        "        del sys.modules[key]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        print(f'{name}: {type(exc).__name__}: {exc}')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


# -- the benchmarks stand apart from the tests ---------------------------------------------------

def test_bench_imports_nothing_from_tests():
    """What both need lives in testkit; bench reaching into tests would tie a measurement to a test's helpers."""
    found = {}
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # imports inside functions too
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found.update({path.relative_to(ROOT).as_posix(): name for name in names
                          if name == "tests" or name.startswith("tests.")})
    assert found == {}
