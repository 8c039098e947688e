"""The domain must stay standard library only, so its rules never depend on infrastructure.

Which of *our* modules the domain may import (none) is import-linter's layers contract in
pyproject.toml, run by `make lint`. import-linter forbids only modules it is given by name, so
"nothing outside the standard library" stays this test: any third-party import fails it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN_DIR = Path(__file__).resolve().parents[2] / "allocation" / "domain"


def third_party_imports(source: str) -> list[str]:
    """Modules imported by `source` that are neither the standard library nor ours (relative
    imports and `allocation.*` are ours: the layers contract checks those)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return [
        name
        for name in found
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "allocation"
    ]


def test_the_domain_imports_only_the_standard_library() -> None:
    modules = sorted(DOMAIN_DIR.rglob("*.py"))
    assert DOMAIN_DIR / "model.py" in modules  # guard against checking an empty folder

    offenders = {
        str(path.relative_to(DOMAIN_DIR)): names
        for path in modules
        if (names := third_party_imports(path.read_text(encoding="utf-8")))
    }

    assert offenders == {}


def test_the_check_catches_a_third_party_import() -> None:
    source = "from __future__ import annotations\nimport os\nimport duckdb\n"
    assert third_party_imports(source) == ["duckdb"]


def test_the_check_catches_a_from_import_of_a_third_party_package() -> None:
    assert third_party_imports("from polars.dataframe import DataFrame\n") == ["polars.dataframe"]


def test_the_check_catches_imports_hidden_inside_functions() -> None:
    source = "def load():\n    import duckdb\n    return duckdb\n"
    assert third_party_imports(source) == ["duckdb"]


def test_the_check_leaves_our_own_modules_to_the_layers_contract() -> None:
    assert third_party_imports("from .model import Batch\nfrom ..io import repository\n") == []
    assert third_party_imports("import allocation.io\n") == []
