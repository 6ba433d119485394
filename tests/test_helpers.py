"""The shared helpers: batches of a sequence."""

from __future__ import annotations

import numpy as np
import pytest

from echosearch.batching import batches


def test_batches_are_slices_of_the_sequence():
    assert list(batches([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(batches([], 3)) == []
    assert list(batches(range(5), 5)) == [range(5)]
    ids = np.arange(7, dtype=np.int64)
    parts = list(batches(ids, 3))
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6]]
    assert all(isinstance(p, np.ndarray) and np.shares_memory(p, ids) for p in parts)
    with pytest.raises(ValueError):
        list(batches([1], 0))
