"""The data dictionary page (docs/data-dictionary.md), written from a warehouse's own catalog.

Every table, view, column and macro is listed with its type and the `COMMENT ON` text the
warehouse carries, so the page says exactly what analysts' tools show and cannot drift from it:
`make docs` rewrites it from the sample warehouse, and a test compares the committed page with a
fresh one. Nothing here depends on the rows, only on the schema.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from allocation.io.reason_codes import OTHER, REASON_CODES
from allocation.io.warehouse_comments import ANALYST_OBJECTS, JOINS, KEYS

_HEADER = """# Data dictionary

Written by `make docs` from the warehouse's own descriptions (`COMMENT ON`, what
`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()` and `duckdb_functions()` show in any
DuckDB client): do not edit by hand. How to open the warehouse, the KPI definitions and example
queries are in [analysts.md](analysts.md). Objects analysts are promised by name come first.
`DESCRIBE table` shows the types but not the descriptions; `duckdb_columns()` shows both.
"""


def render(con: duckdb.DuckDBPyConnection) -> str:
    """The page for the warehouse open on ``con``."""
    objects = con.sql(
        "SELECT table_name, 'table', comment FROM duckdb_tables() WHERE NOT internal "
        "UNION ALL SELECT view_name, 'view', comment FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    columns = con.sql(
        "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
        "WHERE NOT internal ORDER BY table_name, column_index"
    ).fetchall()
    macros = con.sql(
        "SELECT function_name, parameters, comment FROM duckdb_functions() "
        "WHERE function_type = 'table_macro' AND NOT internal ORDER BY function_name"
    ).fetchall()
    promised = {name: index for index, name in enumerate(ANALYST_OBJECTS)}
    ordered = sorted(objects, key=lambda o: (promised.get(o[0], len(promised)), o[0]))
    out = [_HEADER]
    out.append("## Contents\n")
    out += [f"- [`{name}`](#{name}) ({kind})" for name, kind, _ in ordered]
    out += [f"- [`{name}`](#{name}) (table macro)" for name, _p, _c in macros]
    out.append("- [Reason codes](#reason-codes)\n")
    for name, kind, comment in ordered:
        out.append(f"## {name}\n")
        out.append(f"{kind.capitalize()}. {comment or ''}\n")
        keys = KEYS.get(name, ())
        if keys:
            out.append("Keys: " + "; ".join(f"`({key})`" for key in keys) + ".\n")
        joins = [j for j in JOINS if j[0] == name]
        if joins:
            out.append(
                "Joins: "
                + "; ".join(f"`{c}` → `{parent}({k})`" for _t, c, parent, k in joins)
                + ".\n"
            )
        out.append("| column | type | meaning |\n|---|---|---|")
        out += [
            f"| `{column}` | {data_type} | {text or ''} |"
            for table, column, data_type, text in columns
            if table == name
        ]
        out.append("")
    for name, parameters, comment in macros:
        out.append(f"## {name}\n")
        out.append(f"Table macro `{name}({', '.join(parameters)})`. {comment or ''}\n")
    out.append("## Reason codes\n")
    out.append("`rejected_rows.reason_code`: the first pattern a reason matches.\n")
    out.append("| code | meaning |\n|---|---|")
    out += [f"| `{code}` | {meaning} |" for code, _pattern, meaning in REASON_CODES]
    out.append(f"| `{OTHER}` | A reason no code above describes yet. |")
    return "\n".join(out) + "\n"


def write(warehouse: Path, page: Path) -> None:
    """Writes the page for ``warehouse`` (opened read-only) to ``page``."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        text = render(con)
    finally:
        con.close()
    page.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m allocation.io.data_dictionary WAREHOUSE PAGE")
    write(Path(sys.argv[1]), Path(sys.argv[2]))
