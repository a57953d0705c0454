"""The public namespaces stay curated: ``__all__`` is sorted, complete and truthful."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import jobdesk
import jobdesk.errors
from jobdesk.errors import JobdeskError

CURATED = [jobdesk, jobdesk.errors]


def defined_in_jobdesk(value: object) -> bool:
    """Whether ``value`` is a class or function that jobdesk itself defines."""
    if not (inspect.isclass(value) or inspect.isfunction(value)):
        return False
    module = getattr(value, "__module__", "") or ""
    return module == "jobdesk" or module.startswith("jobdesk.")


def error_classes() -> list[type[BaseException]]:
    return [
        value
        for value in vars(jobdesk.errors).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == jobdesk.errors.__name__
    ]


@pytest.mark.parametrize("module", CURATED, ids=lambda module: module.__name__)
def test_all_is_sorted_and_without_duplicates(module: ModuleType) -> None:
    assert module.__all__ == sorted(set(module.__all__))


@pytest.mark.parametrize("module", CURATED, ids=lambda module: module.__name__)
def test_every_name_in_all_exists(module: ModuleType) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("module", CURATED, ids=lambda module: module.__name__)
def test_every_public_class_and_function_is_in_all(module: ModuleType) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and defined_in_jobdesk(value)
    }
    assert public, f"{module.__name__} exports nothing"
    assert sorted(public - set(module.__all__)) == []


def test_every_error_class_descends_from_jobdesk_error() -> None:
    classes = error_classes()
    assert len(classes) == 11
    for error_class in classes:
        assert issubclass(error_class, JobdeskError), error_class


def test_every_error_class_is_exported_and_drawn_in_the_tree() -> None:
    doc = jobdesk.errors.__doc__ or ""
    for error_class in error_classes():
        assert error_class.__name__ in jobdesk.errors.__all__
        assert error_class.__name__ in doc


def test_the_package_exposes_a_version() -> None:
    assert jobdesk.__version__.count(".") == 2
