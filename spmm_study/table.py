"""Tables as data: a title, column names and rows of raw values, with how each column is shown.

Every table the tool prints - a run's results, a ladder, a comparison, the study table, the ceilings, the
autotune winners - is a ``Table`` built from rows by the module that knows the facts (``report``,
``calibrate``, ``autotune``); ``to_markdown`` writes it for the README and ``cli.render_table`` draws it
with rich. Numbers stay numbers until a cell is formatted here, so the two renderings cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class Table:
    """A table as data: raw values in ``rows`` (floats, ints, strings; ``"FAIL"`` for failures);
    ``formats`` maps a column to how it is shown (``time``, ``x`` for a speedup, ``bytes``, ``g3``...)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    caption: str = ""
    header: bool = True  # False: a two-column fact sheet (``info``, ``data info``) shows no header line

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]


def fmt_time(s: Any) -> str:
    if not finite(s):
        return s if isinstance(s, str) else "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_bytes(b: Any) -> str:
    if not finite(b):
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def format_cell(value: Any, kind: str = "") -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Measured):
        return str(value)
    if value is None:
        return "-"
    if kind == "time":
        return fmt_time(value)
    if kind == "bytes":
        return fmt_bytes(value)
    if kind == "x":
        return f"{value:.2f}×" if finite(value) else "-"
    if kind == "pct":
        if not finite(value):
            return "-"
        return f"{100 * value:.1f}%" if abs(value) < 0.1 else f"{100 * value:.0f}%"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if kind.startswith("f"):
            return f"{value:.{int(kind[1:])}f}"
        if kind.startswith("g"):
            return f"{value:.{int(kind[1:])}g}"
        return f"{value:.3g}"
    return str(value)


def formatted_rows(table: Table) -> list[list[str]]:
    return [[format_cell(v, table.formats.get(c, "")) for c, v in zip(table.columns, row)] for row in table.rows]


def to_markdown(tables: Table | Sequence[Table]) -> str:
    if isinstance(tables, Table):
        tables = [tables]
    parts = []
    for t in tables:
        lines = []
        if t.title:
            lines.append(f"**{t.title}**\n")
        numeric = [any(isinstance(v, (int, float, Measured)) and not isinstance(v, bool) for v in t.column(c))
                   for c in t.columns]
        lines.append("| " + " | ".join(t.columns) + " |")
        lines.append("| " + " | ".join("---:" if num else "---" for num in numeric) + " |")
        for row in formatted_rows(t):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        if t.caption:
            lines.append(f"\n{t.caption}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class Measured:
    """A compare cell: median time and speedup vs the baseline, shown as ``53.1 µs (2.12×)``."""

    time_s: float
    speedup: float

    def __str__(self) -> str:
        up = f" ({self.speedup:.2f}×)" if finite(self.speedup) else ""
        return fmt_time(self.time_s) + up
