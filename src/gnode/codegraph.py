"""The gnode modules a job runs, read from its import graph, and a hash of their source.

Snakemake does not see changes inside an imported package. Each rule carries, in its
``params``, the hash of every gnode source file its script can import: the script's own
imports, followed through the package (imports inside functions included, since the graph is
read from the source with :mod:`ast`, not from what one run happened to import), plus the
``__init__.py`` of every package on the way (Python runs them on import). Nothing is imported,
so planning stays fast and a broken module still gets a hash.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "gnode"
ROOT = Path(__file__).resolve().parent  # .../src/gnode


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
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(source)):
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


def reachable_files(entry: str | Path) -> list[Path]:
    """Every gnode source file that running ``entry`` (a script path or a dotted gnode module)
    can import, sorted; the entry itself is included when it is a gnode module."""
    entry_path = module_file(str(entry)) if str(entry).startswith(PACKAGE) else None
    if entry_path is not None:
        todo = {str(entry)}
    else:
        todo = set(imported_names(Path(entry).read_text()))
    seen: set[Path] = set()
    while todo:
        name = todo.pop()
        for full in (*_parents(name), name):
            path = module_file(full)
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.update(_module_imports(path))
    return sorted(seen)


def code_hash(entry: str | Path) -> str:
    """16 hex digits of the SHA-256 of every gnode file ``entry`` can import (names and contents)."""
    h = hashlib.sha256()
    for path in reachable_files(entry):
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def script_hashes(folder: str | Path) -> dict[str, str]:
    """``{script stem: code_hash(script)}`` for every ``*.py`` in a workflow's scripts folder."""
    return {p.stem: code_hash(p) for p in sorted(Path(folder).glob("*.py"))}
