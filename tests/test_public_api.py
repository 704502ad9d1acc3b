"""The Python API is each package's ``__all__``: every public name a package ``__init__`` binds
is in it, every name in it resolves, and the examples and the README's Python snippets import
only from it (issue #15 item 5). ``agents`` and ``orchestrator`` are the facades a Python user
imports from; ``bus`` and ``storage`` export their own layer's names (connections and local
Redis; records, with each store in its module's ``__all__``)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("agents", "bus", "orchestrator", "storage")
# Packages whose __init__ is the API: code outside them imports from the package, not its modules.
FACADES = ("agents", "orchestrator")


def _packages() -> list[str]:
    names: list[str] = []
    for top in OURS:
        names.append(top)
        module = importlib.import_module(top)
        names += [
            info.name
            for info in pkgutil.walk_packages(module.__path__, prefix=f"{top}.")
            if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")[1:])
        ]
    return names


def _bound_names(source: str) -> tuple[set[str], set[str]]:
    """The public names an ``__init__`` defines, and those it imports, at module level (leaving
    out ``if TYPE_CHECKING:``)."""
    defined: set[str] = set()
    imported: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            imported.update((alias.asname or alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
    public = {name for name in defined | imported if not name.startswith("_")}
    return defined & public, imported & public


@pytest.mark.parametrize("package", _packages())
def test_every_public_name_of_a_package_is_in_all(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    defined, imported = _bound_names(Path(module.__file__).read_text())
    # What an __init__ imports from outside memgrid (TYPE_CHECKING, Any) is for its own use.
    ours = {
        name
        for name in imported
        if not isinstance(getattr(module, name, None), ModuleType)
        and str(getattr(getattr(module, name, None), "__module__", "")).split(".")[0] in OURS
    }
    missing = (defined | ours) - set(module.__all__)
    assert not missing, f"{package} exposes {sorted(missing)} without listing them in __all__"
    unresolved = [name for name in module.__all__ if not hasattr(module, name)]
    assert not unresolved, f"{package}.__all__ names what it cannot give: {unresolved}"
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    shadowed = sorted(submodules & set(module.__all__))
    assert not shadowed, f"{package}.__all__ names {shadowed}, which its submodules shadow"


@pytest.mark.parametrize("package", FACADES)
def test_the_api_is_what_a_user_needs(package: str) -> None:
    module = importlib.import_module(package)
    wanted = {
        "agents": {"AgentSpec", "BlockSpec", "create_agent", "RunStore", "Runtime", "Worker"},
        "orchestrator": {"open_runtime", "apply_workflow", "run_inputs", "configure_logging"},
    }[package]
    assert wanted <= set(module.__all__)


def _snippets() -> list[tuple[str, str]]:
    found = [
        (str(p.relative_to(ROOT)), p.read_text()) for p in sorted(ROOT.glob("examples/**/*.py"))
    ]
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md has no Python snippet"
    found += [(f"README.md python block {i + 1}", block) for i, block in enumerate(blocks)]
    return found


def _wrong_imports(source: str) -> list[str]:
    wrong: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    wrong.append(f"import {alias.name}: import names from its package instead")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top not in OURS:
                continue
            module = importlib.import_module(node.module)
            # A function named like its module (agents.ingest.ingest) cannot come from the
            # package: the submodule, once imported, is the package's attribute of that name.
            shadowed = [alias.name for alias in node.names] == [node.module.split(".")[-1]]
            if top in FACADES and not hasattr(module, "__path__") and not shadowed:
                wrong.append(f"from {node.module}: import from the package {top!r}")
                continue
            exported = set(getattr(module, "__all__", ()))
            wrong += [
                f"from {node.module} import {alias.name}: not in its __all__"
                for alias in node.names
                if alias.name not in exported
            ]
    return wrong


@pytest.mark.parametrize(("where", "source"), _snippets(), ids=lambda v: str(v)[:40])
def test_examples_and_readme_import_only_the_public_api(where: str, source: str) -> None:
    wrong = _wrong_imports(source)
    assert not wrong, f"{where}:\n" + "\n".join(wrong)
