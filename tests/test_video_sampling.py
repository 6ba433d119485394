from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echosearch.video import BadSamplingSpec, parse_sampling


def test_uniform_default_spans_clip():
    idx = parse_sampling(None).indices(120).tolist()
    assert len(idx) == 16 and idx[0] == 0 and idx[-1] == 119


def test_uniform_short_clip_gives_every_frame():
    assert parse_sampling("uniform:16").indices(5).tolist() == [0, 1, 2, 3, 4]


def test_stride_limit_is_echoclip_zero_shot_example():
    assert parse_sampling("stride:2,limit:40").indices(120).tolist() == list(range(0, 40, 2))
    assert parse_sampling("stride:2,limit:40").indices(10).tolist() == [0, 2, 4, 6, 8]
    assert parse_sampling("stride:50").indices(120).tolist() == [0, 50, 100]


def test_all_and_empty():
    assert parse_sampling("all").indices(3).tolist() == [0, 1, 2]
    assert parse_sampling("ALL").indices(0).tolist() == []


def test_roundtrip_text():
    for spec in ("uniform:8", "all", "stride:2,limit:40", "stride:3"):
        assert str(parse_sampling(spec)) == spec


@pytest.mark.parametrize(
    "spec", ["", "uniform", "uniform:-1", "uniform:2.5", "random:4", "stride:0", "stride:2,lim:3"]
)
def test_bad_specs(spec):
    with pytest.raises(BadSamplingSpec):
        parse_sampling(spec)


@given(n=st.integers(1, 2000), k=st.integers(1, 64))
def test_uniform_indices_sorted_unique_in_range(n, k):
    idx = parse_sampling(f"uniform:{k}").indices(n)
    assert len(idx) == min(n, k)
    assert (idx[1:] > idx[:-1]).all() and 0 <= idx[0] and idx[-1] <= n - 1
    if min(n, k) >= 2:
        assert idx[0] == 0 and idx[-1] == n - 1
