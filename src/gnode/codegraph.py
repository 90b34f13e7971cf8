"""The gnode modules a job runs, read from its import graph, and a hash of their source.

Snakemake does not see changes inside an imported package. Each rule carries, in its
``params``, the hash of every gnode source file its script can import: the script's own
imports, followed through the package (imports inside functions included, since the graph is
read from the source with :mod:`ast`, not from what one run happened to import), plus the
``__init__.py`` of every package on the way (Python runs them on import). Nothing is imported,
so planning stays fast and a broken module still gets a hash.

A module of :data:`PER_FUNCTION` (:mod:`gnode.jobs`: one function per job, each importing its
study lazily) is followed function by function: a script that calls ``jobs.train_flipflop``
reaches that function, the module's functions it calls in turn and the module's own top-level
code, with the imports found there, but not the other jobs. Its share of the hash is the source
of those parts, so editing one job function re-runs that job only.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "gnode"
ROOT = Path(__file__).resolve().parent  # .../src/gnode
#: modules followed per function (see the module docstring); only their top-level code and the
#: functions called run, because top-level code there only defines and registers
PER_FUNCTION = frozenset({"gnode.jobs"})


def module_file(name: str) -> Path | None:
    """The source file of a dotted gnode module or package name, or None if there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    """The dotted name of a gnode source file (``.../gnode/plotting/common.py`` → ``gnode.plotting.common``)."""
    rel = path.resolve().relative_to(ROOT).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parents(name: str) -> list[str]:
    """``gnode.a.b`` → [``gnode``, ``gnode.a``]: the packages whose ``__init__`` runs first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_names(source: str, current: str | None = None, is_package: bool = False) -> set[str]:
    """Dotted names of every gnode module that ``source`` imports, anywhere in the file.

    ``current`` is the source's own module name (for relative imports). ``from gnode.x import y``
    names ``gnode.x.y`` when that is a module, else ``gnode.x``.
    """
    return _imports_in(ast.parse(source), current, is_package)


def _imports_in(tree: ast.AST, current: str | None, is_package: bool) -> set[str]:
    """:func:`imported_names` of a parsed tree (a module or one of its functions)."""
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current is None:
                    continue
                anchor = current.split(".")
                # a module's level 1 is its package; a package's level 1 is itself
                drop = node.level - 1 if is_package else node.level
                anchor = anchor[: len(anchor) - drop] if drop else anchor
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            lazy = lazy_exports(base)
            found.update(lazy.get(alias.name, f"{base}.{alias.name}") for alias in node.names)
    return {name for name in found if module_file(name) is not None}


def _module_imports(path: Path) -> frozenset[str]:
    return _parsed_imports(path, path.stat().st_mtime_ns)


def lazy_exports(package: str) -> dict[str, str]:
    """A package's ``_LAZY`` dict literal (public name -> defining module), {} if it has none:
    ``from gnode import fit`` runs :mod:`gnode.training`."""
    path = module_file(package)
    if path is None or path.name != "__init__.py":
        return {}
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in targets) and node.value is not None:
            return dict(ast.literal_eval(node.value))
    return {}


def _typing_only(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): its imports never run."""
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of typing-only blocks (their ``else`` is kept)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _typing_only(node):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


@cache
def _parsed_imports(path: Path, mtime_ns: int) -> frozenset[str]:
    # keyed by the modification time too: an edited file is read again
    return frozenset(imported_names(path.read_text(), module_name(path), path.name == "__init__.py"))


def _called_functions(tree: ast.Module, module: str) -> set[str] | None:
    """The functions of ``module`` (a :data:`PER_FUNCTION` one) that ``tree`` uses, or None when
    it uses the module otherwise than by name (``jobs.x``, ``from gnode.jobs import x``):
    then all of the module counts."""
    parent, _, leaf = module.rpartition(".")
    aliases: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module == parent:
            aliases.update(a.asname or a.name for a in node.names if a.name == leaf)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module == module:
            used.update(a.name for a in node.names)
        elif isinstance(node, ast.Import) and any(a.name == module for a in node.names):
            return None  # ``import gnode.jobs``: reached through the name ``gnode``; count it all
    attributes = {id(n.value): n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in aliases:
            if id(node) not in attributes:
                return None  # the module itself is passed around: any function may run
            used.add(attributes[id(node)])
    return used


def _top_functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _function_closure(path: Path, names: set[str]) -> list[str]:
    """``names`` and every top-level function of ``path`` that they name (decorators included),
    followed transitively; sorted."""
    functions = _top_functions(ast.parse(path.read_text()))
    todo, seen = {n for n in names if n in functions}, set()
    while todo:
        name = todo.pop()
        seen.add(name)
        named = {n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name)}
        todo |= {n for n in named if n in functions} - seen
    return sorted(seen)


def _unit_source(path: Path, functions: list[str] | None) -> bytes:
    """What a unit of the graph contributes to the hash: a whole file, or (per function) the
    file's top-level code other than functions plus the source of ``functions``."""
    if functions is None:
        return path.read_bytes()
    text = path.read_text()
    tree = ast.parse(text)
    keep = set(functions)
    parts = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in keep:
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        parts.append("\n".join(text.splitlines()[first - 1 : node.end_lineno]))
    return "\n".join(parts).encode()


def _unit_imports(path: Path, functions: list[str]) -> set[str]:
    """The gnode modules that the top-level code of ``path`` and its ``functions`` import."""
    tree = ast.parse(path.read_text())
    keep = set(functions)
    body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) or n.name in keep]
    name = module_name(path)
    return _imports_in(ast.Module(body=body, type_ignores=[]), name, path.name == "__init__.py")


def _entry_units(entry: str | Path) -> tuple[set[str], dict[str, set[str]]]:
    """(modules reached whole, {per-function module: functions used}) of one entry: a script
    path, a dotted gnode module, or ``module:function``."""
    text = str(entry)
    if text.startswith(PACKAGE) and ":" in text:
        module, _, function = text.partition(":")
        return set(), {module: {function}}
    if text.startswith(PACKAGE) and module_file(text) is not None:
        return {text}, {}
    tree = ast.parse(Path(entry).read_text())
    whole, partial = set(_imports_in(tree, None, False)), {}
    for module in PER_FUNCTION & whole:
        used = _called_functions(tree, module)
        if used is not None:
            whole.discard(module)
            partial[module] = used
    return whole, partial


def reachable(*entries: str | Path) -> dict[Path, list[str] | None]:
    """Every gnode source file that running ``entries`` (script paths, dotted gnode modules or
    ``module:function``) can import, sorted, each with the functions that count (None: the whole
    file; a list: the top-level code and those functions of a :data:`PER_FUNCTION` module)."""
    todo: set[str] = set()
    partial: dict[str, set[str]] = {}
    for entry in entries:
        whole, part = _entry_units(entry)
        todo |= whole
        for module, names in part.items():
            partial.setdefault(module, set()).update(names)
    units: dict[Path, list[str] | None] = {}
    for module, names in partial.items():
        path = module_file(module)
        if path is not None:
            functions = _function_closure(path, names)
            units[path] = functions
            todo |= _unit_imports(path, functions) | set(_parents(module))
    while todo:
        name = todo.pop()
        for full in (*_parents(name), name):
            path = module_file(full)
            if path is None or (path in units and units[path] is None):
                continue
            units[path] = None  # imported as a module: all of it runs
            todo.update(_module_imports(path))
    return dict(sorted(units.items()))


def reachable_files(*entries: str | Path) -> list[Path]:
    """The files of :func:`reachable`, sorted; an entry that is a gnode module is included."""
    return list(reachable(*entries))


def code_hash(*entries: str | Path) -> str:
    """16 hex digits of the SHA-256 of every gnode file (or, per function, the parts of one)
    that ``entries`` can import (names and contents). The same modules and functions give the
    same hash, whichever entries reach them."""
    h = hashlib.sha256()
    for path, functions in reachable(*entries).items():
        h.update(str(path.relative_to(ROOT)).encode())
        if functions is not None:
            h.update(("::" + ",".join(functions)).encode())
        h.update(b"\0")
        h.update(_unit_source(path, functions))
    return h.hexdigest()[:16]


def script_hashes(folder: str | Path) -> dict[str, str]:
    """``{script stem: code_hash(script)}`` for every ``*.py`` in a workflow's scripts folder."""
    return {p.stem: code_hash(p) for p in sorted(Path(folder).glob("*.py"))}
