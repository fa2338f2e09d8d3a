"""The wire package both sides import: standard library only, so neither side drags in the other's packages."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import leaf_wire

WIRE = Path(leaf_wire.__file__).parent


def imported_top_levels(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_wire_module_imports_only_the_standard_library() -> None:
    modules = sorted(WIRE.glob("*.py"))
    assert len(modules) >= 6  # protocol, columns, client, reasons, csvcell, addresses
    for module in modules:
        outside = imported_top_levels(module) - set(sys.stdlib_module_names) - {"__future__", "leaf_wire"}
        assert not outside, f"{module.name} imports {sorted(outside)}"


def test_the_checker_sees_a_third_party_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom numpy import array\nfrom . import sibling\n", encoding="utf-8")
    assert imported_top_levels(bad) - set(sys.stdlib_module_names) == {"numpy"}


def test_the_one_csv_writer_starts_with_a_bom_guards_cells_and_streams_in_chunks() -> None:
    from leaf_wire.csvcell import BOM, csv_chunks, csv_text

    rows = [("=cmd|' /C calc'!A0", 1.5, None), *[(f"leaf {n}", n, "") for n in range(5)]]
    chunks = list(csv_chunks(("name", "value", "note"), rows, rows_per_chunk=2))
    assert chunks[0] == BOM + "name,value,note\r\n"  # header alone first: a download starts at once
    assert len(chunks) == 1 + 3  # six rows, two per chunk
    body = "".join(chunks)
    assert body == csv_text(("name", "value", "note"), rows)
    assert body.splitlines()[1] == "'=cmd|' /C calc'!A0,1.5,"  # formula defused, number kept, None empty
    assert body.count("\r\n") == 7
