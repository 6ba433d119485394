"""``batches``: a sequence in slices of at most ``size`` items (ids for a SQL ``IN``, texts for a model).

Not :func:`itertools.batched` (Python 3.12+, and this package supports 3.11), which yields tuples:
these are slices of the sequence itself, so a list gives lists and a NumPy array gives views.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

S = TypeVar("S")  # anything with len() and slicing: a list, tuple, range, NumPy array

#: Ids per SQL ``IN (...)``: well under SQLite's limit on bound parameters (32766).
SQL_IN_BATCH = 10_000


def batches(seq: S, size: int) -> Iterator[S]:
    """``seq[0:size]``, ``seq[size:2*size]``, ... (nothing for an empty sequence)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    for start in range(0, len(seq), size):  # type: ignore[arg-type]
        yield seq[start : start + size]  # type: ignore[index]
