"""Lazy exports for a package ``__init__``: a public name's module loads when it is first used.

A package lists its public names in ``__all__`` and imports the lazy ones under
``if TYPE_CHECKING:``, where type checkers read them. That block is also where a name's module is
found at run time, so the two cannot disagree::

    if TYPE_CHECKING:
        from agents.runs import RunStore

    __all__ = ("RunStore",)
    __getattr__, __dir__ = lazy_exports(globals())

It lives in ``bus``, the lowest layer that every package with lazy exports may import.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

__all__ = ("lazy_exports",)


def lazy_exports(
    namespace: MutableMapping[str, Any],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of the package whose ``globals()`` is
    ``namespace``: a name of its ``__all__`` imported under ``if TYPE_CHECKING:`` is imported
    from its module on first use and kept."""
    package = str(namespace["__name__"])
    origins: dict[str, str] = {}

    def __getattr__(name: str) -> Any:
        public = name in namespace["__all__"]
        if public and not origins:  # read once, when the first lazy name is asked for
            origins.update(_type_checking_imports(Path(namespace["__file__"]).read_text()))
        module = origins.get(name) if public else None
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace["__all__"]))

    return __getattr__, __dir__


def _type_checking_imports(source: str) -> dict[str, str]:
    """Each name imported at the top of ``source`` under ``if TYPE_CHECKING:``, and its module."""
    found: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    found.update((a.asname or a.name, statement.module) for a in statement.names)
    return found
