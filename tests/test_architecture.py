"""The import direction of DESIGN.md: bus and storage import nothing of ours; agents imports
bus and storage; orchestrator imports all three. And every package exports ``__all__``."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"bus", "storage", "agents", "orchestrator"}
ALLOWED = {
    "bus": set(),
    "storage": set(),
    "agents": {"bus", "storage"},
    "orchestrator": {"bus", "storage", "agents"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(OURS))
def test_imports_flow_one_way(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) - ALLOWED[package] - {package}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "imports against DESIGN.md's direction:\n" + "\n".join(offenders)


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
