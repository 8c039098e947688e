"""The domain must stay standard library only, so its rules never depend on infrastructure."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

DOMAIN_PACKAGE = "allocation.domain"
DOMAIN_DIR = Path(__file__).resolve().parents[2] / "allocation" / "domain"


def foreign_imports(source: str, package: str = DOMAIN_PACKAGE) -> list[str]:
    """Modules imported by `source` (a module of `package`) outside the stdlib and the domain."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            relative = "." * node.level + (node.module or "")
            try:
                found.append(importlib.util.resolve_name(relative, package))
            except ImportError:  # a relative import climbing above the top package
                found.append(relative)
    return [
        name
        for name in found
        if not (name == package or name.startswith(package + "."))
        and name.split(".")[0] not in sys.stdlib_module_names
    ]


def domain_modules() -> dict[Path, str]:
    """Every .py file under allocation/domain, with the package its relative imports start at."""
    modules: dict[Path, str] = {}
    for path in sorted(DOMAIN_DIR.rglob("*.py")):
        parts = path.relative_to(DOMAIN_DIR).parent.parts
        modules[path] = ".".join((DOMAIN_PACKAGE, *parts))
    return modules


def test_the_domain_imports_only_the_standard_library() -> None:
    modules = domain_modules()
    assert DOMAIN_DIR / "model.py" in modules  # guard against checking an empty folder

    offenders = {
        str(path.relative_to(DOMAIN_DIR)): names
        for path, package in modules.items()
        if (names := foreign_imports(path.read_text(encoding="utf-8"), package))
    }

    assert offenders == {}


def test_the_check_catches_a_third_party_import() -> None:
    source = "from __future__ import annotations\nimport os\nimport duckdb\n"
    assert foreign_imports(source) == ["duckdb"]


def test_the_check_catches_a_from_import_of_a_third_party_package() -> None:
    assert foreign_imports("from polars.dataframe import DataFrame\n") == ["polars.dataframe"]


def test_the_check_catches_imports_hidden_inside_functions() -> None:
    source = "def load():\n    import duckdb\n    return duckdb\n"
    assert foreign_imports(source) == ["duckdb"]


def test_the_check_catches_relative_imports_leaving_the_domain() -> None:
    assert foreign_imports("from ..io import repository\n") == ["allocation.io"]
    assert foreign_imports("from ...outside import thing\n") == ["...outside"]


def test_the_check_allows_relative_imports_within_the_domain() -> None:
    assert foreign_imports("from .model import Batch\nfrom . import model\n") == []
