"""The README's layer diagram says which layer imports which: checked against the code's real imports.

Every arrow drawn must be an import that exists, and every import between two layers must be
drawn, so the picture a newcomer reads cannot drift from the code. The core's modules are the
ones pyproject.toml's first import-linter contract names (one list, read from there).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARROW = re.compile(r"^\s*(\w+)(?:\[[^\]]*\])?\s*-->\s*(.+)$")


def layers() -> dict[str, tuple[str, ...]]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    core = tuple(contracts["contracts"][0]["source_modules"])
    return {
        "core": core,
        "adapters": ("appliance.hardware", "appliance.classifier", "appliance.notify", "appliance.web"),
        "store": ("appliance.store",),
        "export": ("appliance.export",),
        "sync": ("appliance.sync",),
        "wiring": ("appliance.wiring", "appliance.cli"),
        "collector": ("leaf_collector",),
        "wire": ("leaf_wire",),
    }


def drawn_arrows(readme: str) -> set[tuple[str, str]]:
    block = readme.split("```mermaid", 1)[1].split("```", 1)[0]
    arrows = set()
    for line in block.splitlines():
        match = ARROW.match(line)
        if match:
            targets = re.sub(r"\[[^\]]*\]", "", match.group(2))
            arrows |= {(match.group(1), t.strip()) for t in targets.split("&")}
    return arrows


def real_arrows() -> set[tuple[str, str]]:
    graph = grimp.build_graph("appliance", "leaf_wire", "leaf_collector", exclude_type_checking_imports=True)
    owner: dict[str, str] = {}
    for layer, prefixes in layers().items():
        for module in graph.modules:
            if any(module == p or module.startswith(p + ".") for p in prefixes):
                owner[module] = layer
    arrows = set()
    for module, layer in owner.items():
        for imported in graph.find_modules_directly_imported_by(module):
            other = owner.get(imported)
            if other is not None and other != layer:
                arrows.add((layer, other))
    return arrows


def test_the_readme_diagram_draws_exactly_the_imports_between_layers() -> None:
    drawn = drawn_arrows((ROOT / "README.md").read_text(encoding="utf-8"))
    real = real_arrows()
    assert drawn - real == set(), "arrows drawn that the code does not have"
    assert real - drawn == set(), "imports between layers the diagram does not draw"


def test_the_diagram_parser_reads_grouped_targets() -> None:
    text = '```mermaid\nflowchart LR\n  a["x: y"] --> b & c\n  c --> d\n```'
    assert drawn_arrows(text) == {("a", "b"), ("a", "c"), ("c", "d")}


@pytest.mark.parametrize("layer", ["core", "adapters", "store", "export", "sync", "collector", "wire"])
def test_every_layer_has_modules(layer: str) -> None:
    graph = grimp.build_graph("appliance", "leaf_wire", "leaf_collector")
    assert any(m.startswith(layers()[layer]) for m in graph.modules)


SQL_ON_DIAGNOSES = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE|FROM|INTO|JOIN|ALTER TABLE)\b[^\n]*\bdiagnoses\b", re.I)


def sql_on_diagnoses(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if SQL_ON_DIAGNOSES.search(line)]


def test_only_the_store_speaks_sql_to_the_diagnoses_table() -> None:
    outside = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "appliance").rglob("*.py"))
        if "store" not in path.relative_to(ROOT / "appliance").parts[:1]
        and (found := sql_on_diagnoses(path.read_text(encoding="utf-8")))
    }
    assert outside == {}


def test_the_sql_finder_sees_a_query() -> None:
    assert sql_on_diagnoses('rows = conn.execute("SELECT id FROM diagnoses WHERE x")\nsay("3 diagnoses sent")')
    assert not sql_on_diagnoses('log.info("sent 3 diagnoses to base")')
