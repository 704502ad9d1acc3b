"""The layers of docs/architecture.md: bus and storage import nothing of ours; agents imports
bus and storage; orchestrator imports all three (why: docs/architecture.md, "Layers"). Every
package exports ``__all__``, and every module and function the document names exists."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
OURS = {"bus", "storage", "agents", "orchestrator"}
ALLOWED = {
    "bus": set(),
    "storage": set(),
    "agents": {"bus", "storage"},
    "orchestrator": {"bus", "storage", "agents"},
}


# memgrid's error root (MemgridError and its three kinds) must be importable by every package:
# it lives in storage.errors, which imports nothing at all, and bus may import that one module.
ERROR_ROOT = "storage.errors"


def _modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _modules(path)} & OURS


@pytest.mark.parametrize("package", sorted(OURS))
def test_imports_flow_one_way(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        modules = _modules(path) - {ERROR_ROOT}
        bad = {name.split(".")[0] for name in modules} & OURS - ALLOWED[package] - {package}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "imports against docs/architecture.md's direction:\n" + "\n".join(
        offenders
    )


def test_the_error_root_imports_nothing_of_ours() -> None:
    assert not _imports(ROOT / "storage" / "errors.py")


@pytest.mark.parametrize("package", sorted(OURS))
def test_public_names_are_exported(package: str) -> None:
    """Every package and public module declares a tuple ``__all__`` naming real attributes."""
    module = importlib.import_module(package)
    names = [package]
    names += [
        info.name
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    ]
    for name in names:
        mod = importlib.import_module(name)
        exported = getattr(mod, "__all__", None)
        assert isinstance(exported, tuple), f"{name} has no tuple __all__"
        missing = [attr for attr in exported if not hasattr(mod, attr)]
        assert not missing, f"{name}.__all__ names missing attributes {missing}"


_PACKAGES = "|".join(sorted(OURS))
_PATH = re.compile(rf"(?:{_PACKAGES})(?:/[\w.]+)+")
_DOTTED = re.compile(rf"(?:{_PACKAGES})(?:\.\w+)+")


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or a module's attribute (of an attribute...)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False


def test_the_architecture_document_names_only_what_exists() -> None:
    """A module moved or a function renamed must take docs/architecture.md along."""
    named = set(re.findall(r"`([^`\s]+)`", DOC.read_text()))
    paths = {n for n in named if _PATH.fullmatch(n)}
    dotted = {n for n in named if _DOTTED.fullmatch(n)}
    assert len(paths) >= 8 and len(dotted) >= 40, "the document should name real code"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    missing += sorted(d for d in dotted if not _resolves(d))
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"
