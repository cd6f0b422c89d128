"""Output of admin commands: aligned tables for people, JSON for scripts."""

import json
from collections.abc import Sequence
from typing import Any


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON with sorted keys."""
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print ``rows`` under ``headers`` in left-aligned columns.

    None and empty text are shown as ``-``. An empty ``rows`` prints the header
    line only.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max([len(header)] + [len(row[column]) for row in cells])
        for column, header in enumerate(headers)
    ]
    print(_line(headers, widths))
    for row in cells:
        print(_line(row, widths))


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """Print one record as ``name: value`` lines with the values aligned."""
    width = max((len(name) for name, _ in fields), default=0)
    for name, value in fields:
        print(f"{name + ':':<{width + 1}} {_cell(value)}")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value) or "-"
    return str(value)


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        value.ljust(width) for value, width in zip(values, widths, strict=True)
    ).rstrip()
