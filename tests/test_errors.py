"""One error root: every exception memgrid defines is a MemgridError, and exactly one of what the
user can fix (UserError), what failed at run time (RuntimeFailure) or a control signal
(ControlSignal), drawn in its package's docstring. Entry points catch the three, not lists."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from tests._util import loaded_by

PACKAGES = ("bus", "storage", "agents", "orchestrator")


def _defined_errors(package: str) -> list[type[BaseException]]:
    module = importlib.import_module(package)
    names = [package] + [
        info.name for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}.")
    ]
    found: list[type[BaseException]] = []
    for name in names:
        if name.endswith(("__main__", "pytest_plugin")):
            continue
        mod = importlib.import_module(name)
        for attr, value in vars(mod).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not attr.startswith("_")
            ):
                found.append(value)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_every_error_has_the_root_and_one_kind(package: str) -> None:
    from storage.errors import ControlSignal, MemgridError, RuntimeFailure, UserError

    kinds = (UserError, RuntimeFailure, ControlSignal)
    errors = _defined_errors(package)
    assert errors
    wrong = []
    for error in errors:
        if error in (MemgridError, *kinds):
            continue
        matched = [kind.__name__ for kind in kinds if issubclass(error, kind)]
        if not matched and error.__subclasses__():
            continue  # a package's base (BusError, LLMError...): its errors have the kinds
        if len(matched) != 1:
            wrong.append(f"{error.__module__}.{error.__qualname__}: {matched or 'no kind'}")
    assert not wrong, "errors outside the tree:\n" + "\n".join(wrong)
    assert all(issubclass(error, MemgridError) for error in errors)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_docstring_draws_its_errors(package: str) -> None:
    doc = importlib.import_module(package).__doc__ or ""
    missing = [e.__name__ for e in _defined_errors(package) if e.__name__ not in doc]
    assert not missing, f"{package}'s docstring does not draw {missing}"


def test_naming_the_api_errors_loads_no_embedder() -> None:
    heavy = ("onnxruntime", "onnx", "storage.embeddings.minilm")
    assert loaded_by("import orchestrator.api.errors", heavy) == []
