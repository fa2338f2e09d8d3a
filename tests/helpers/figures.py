"""Figures that torture, fault and load tests report (kills survived, rows verified, duplicates...).

The root conftest prints them together at the end of every run, so CI shows them without `-s`.
"""

from __future__ import annotations

FIGURES: list[str] = []


def report_figure(line: str) -> None:
    FIGURES.append(line.strip())
