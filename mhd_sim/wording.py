"""How one-line messages word long lists: a count, ranges and the first few, never a line
that grows with the population (a refusal at 100,000 agents reads like one at 10).

>>> id_ranges([0, 1, 2, 3, 7, 9, 10])
'0-3, 7, 9-10'
>>> id_ranges(range(10_000), limit=3)
'0-9999'
>>> id_ranges(list(range(0, 40, 2)), limit=3)
'0, 2, 4, … (20 in all)'
"""

from __future__ import annotations

from collections.abc import Iterable


def id_ranges(ids: Iterable[int], limit: int = 6) -> str:
    """Sorted integers as runs ``a-b``, at most ``limit`` of them, then how many in all."""
    values = sorted(set(ids))
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    more = f", … ({len(values):,} in all)" if len(runs) > limit else ""
    return ", ".join(shown) + more


def either(names: list[str]) -> str:
    """Names as alternatives: ``a``, ``a or b``, ``a, b or c``.

    >>> either(["mhd"]), either(["mhd", "hybrid"]), either(["mhd", "distill", "fedmd"])
    ('mhd', 'mhd or hybrid', 'mhd, distill or fedmd')
    """
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
