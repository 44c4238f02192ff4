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


# ----------------------------------------------------------------------------------------------- narrow terminals

PROSE_WIDTH = 24  # a column wider than this whose cells hold spaces wraps between its words
PROSE_MIN = 20  # and is given at least this much room (or its longest word): a summary one word a line is no use
MAX_KEYS = 3  # columns repeated in every part of a split table, at most


@dataclass(frozen=True)
class ColumnFit:
    """How one column is drawn. An atomic column (ids, params, numbers with units) never breaks a cell:
    ``width`` is its widest cell or header, ``tight`` its widest cell or longest header word (the header then
    wraps). A prose column (``wraps``) breaks between words only: both are its floor."""

    width: int
    tight: int
    wraps: bool


def column_fits(table: Table, cell_len=len) -> list[ColumnFit]:
    """Each column's ``ColumnFit``; ``cell_len`` measures a string in terminal cells (rich's ``cell_len``)."""
    cells = formatted_rows(table)
    fits = []
    for i, col in enumerate(table.columns):
        texts = [c[i] for c in cells]
        widest = max([cell_len(line) for t in texts for line in t.split("\n")], default=0)
        head_word = max([cell_len(w) for w in col.split()], default=0)
        if max(widest, cell_len(col)) > PROSE_WIDTH and any(" " in t for t in texts):
            longest_word = max([cell_len(w) for t in texts for w in t.split()] + [head_word])
            floor = max(longest_word, min(max(widest, cell_len(col)), PROSE_MIN))
            fits.append(ColumnFit(floor, floor, True))
        else:
            fits.append(ColumnFit(max(widest, cell_len(col)), max(widest, head_word), False))
    return fits


def table_width(fits: Sequence[ColumnFit], tight: bool = False) -> int:
    """Terminal cells a boxed table of these columns needs: each column, its two padding cells, the borders."""
    return sum(f.tight if tight else f.width for f in fits) + 3 * len(fits) + 1


def fit_to_width(table: Table, width: int, cell_len=len) -> list[Table]:
    """``table`` as one or more tables that each fit ``width`` terminal cells, no cell of an atomic column
    broken and no column dropped. First the headers wrap between words; then the columns that still do not
    fit move, in order, to further tables that repeat the key columns (``key_columns``: those that tell
    the rows apart). Where even one column beside the keys is too wide, the table is
    laid out vertically: one block of ``column value`` lines per row."""
    fits = column_fits(table, cell_len)
    if width <= 0 or table_width(fits, tight=True) <= width or len(table.columns) < 2:
        return [table]
    keys = key_columns(table, fits, width)
    parts: list[list[int]] = [[]]
    for i in (i for i in range(len(table.columns)) if i not in keys):
        if parts[-1] and table_width([fits[j] for j in sorted([*keys, *parts[-1], i])], tight=True) > width:
            parts.append([])
        parts[-1].append(i)
    if any(table_width([fits[j] for j in [*keys, *p]], tight=True) > width for p in parts):
        return [vertical(table, width, cell_len)]
    out = []
    for n, part in enumerate(parts):
        idx = sorted([*keys, *part])
        out.append(Table(title=table.title if n == 0 else f"continued ({n + 1}/{len(parts)})",
                         columns=[table.columns[j] for j in idx], rows=[[r[j] for j in idx] for r in table.rows],
                         formats=table.formats, caption=table.caption if n == len(parts) - 1 else "",
                         header=table.header))
    return out


def key_columns(table: Table, fits: Sequence[ColumnFit], width: int) -> list[int]:
    """The columns a split table repeats in each part so its rows can be told apart: the variant (or id)
    column when there is one, else the first; then, while rows share their keys, the atomic column that
    tells most of them apart (at most ``MAX_KEYS``, within half the width)."""
    cells = formatted_rows(table)

    def distinct(cols):
        return len({tuple(c[j] for j in cols) for c in cells})

    named = [i for i, c in enumerate(table.columns) if c in ("variant", "id") and not fits[i].wraps]
    keys = named[:1] or [0]
    while distinct(keys) < len(cells) and len(keys) < min(MAX_KEYS, len(table.columns) - 1):
        fitting = [i for i in range(len(table.columns)) if i not in keys and not fits[i].wraps
                   and table_width([fits[j] for j in [*keys, i]], tight=True) <= width // 2]
        best = max(fitting, key=lambda i: (distinct([*keys, i]), -i), default=None)
        if best is None or distinct([*keys, best]) == distinct(keys):
            break
        keys = sorted([*keys, best])
    return keys


def vertical(table: Table, width: int = 80, cell_len=len) -> Table:
    """One ``column | value`` line per cell, the rows one after another (a blank line between them). A value
    too long for the width left beside the column names is broken after a ``/`` (a DLMC spec is a path)."""
    rows: list[list[Any]] = []
    names = max(cell_len(c) for c in table.columns)
    room = max(width - names - 7, 8)
    for n, r in enumerate(formatted_rows(table)):
        if n:
            rows.append(["", ""])
        rows += [[c, break_long(v, room, cell_len)] for c, v in zip(table.columns, r)]
    return Table(title=table.title, columns=["column", "value"], rows=rows, caption=table.caption, header=False)


def break_long(text: str, room: int, cell_len=len) -> str:
    """``text`` with each word longer than ``room`` cells broken into lines after a ``/`` where it can be (else
    where it must)."""
    words = []
    for word in text.split(" "):
        if cell_len(word) <= room:
            words.append(word)
            continue
        lines, line = [], ""
        for seg in word.replace("/", "/\0").split("\0"):
            while cell_len(seg) > room:  # one segment longer than a line: cut it
                if line:
                    lines.append(line)
                    line = ""
                lines.append(seg[:room])
                seg = seg[room:]
            if cell_len(line + seg) > room:
                lines.append(line)
                line = ""
            line += seg
        words.append("\n".join(lines + ([line] if line else [])))
    return " ".join(words)
