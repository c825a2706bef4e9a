"""Markdown tables, the one way every summary and analysis writes them.

>>> print(markdown_table(["run", "acc"], [["a", "0.5"], ["b", "0.7"]]))
| run | acc |
|---|---|
| a | 0.5 |
| b | 0.7 |
"""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A header, its rule and one line per row (cells already formatted as text)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
