"""The sync-free radix select against sorting."""

from unittest import mock

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from segohem.losses import _select
from segohem.losses._select import kth_largest

special = st.sampled_from([0.0, -0.0, 1e-30, 1.0, 1.0000001, 2.0, 87.5, 1e30, float("inf")])


@pytest.mark.parametrize("method", ["histogram", "sort"])
@given(
    rows=st.lists(
        st.lists(st.one_of(st.floats(0, 100, width=32), special), min_size=1, max_size=40),
        min_size=1, max_size=4),
    data=st.data(),
)
def test_kth_largest_matches_sort(method, rows, data):
    """Both ranking methods (histograms; row-wise sort, used for many short rows)."""
    width = max(len(r) for r in rows)
    values = torch.zeros(len(rows), width)
    excluded = []
    for i, row in enumerate(rows):
        values[i, : len(row)] = torch.tensor(row)
        excluded.append(width - len(row))  # padding zeros are excluded entries
    ks = [data.draw(st.integers(0, len(r))) for r in rows]

    threshold = 0 if method == "histogram" else 1 << 30
    with mock.patch.object(_select, "SORT_BELOW_PIXELS", threshold):
        result = kth_largest(values, torch.tensor(ks), torch.tensor(excluded))

    for i, (row, k) in enumerate(zip(rows, ks, strict=True)):
        if k == 0:
            continue
        row32 = torch.tensor(row, dtype=torch.float32).tolist()
        ordered = sorted((abs(v) if v == 0 else v for v in row32), reverse=True)
        kth = ordered[k - 1]
        assert result.value[i].item() == kth
        assert result.n_greater[i].item() == sum(v > kth for v in ordered)
        assert result.n_equal[i].item() == sum(v == kth for v in ordered)


def test_kth_largest_large_row_with_near_ties():
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(200_000, generator=gen)
    values = torch.cat([base, torch.nextafter(base[:1000], torch.tensor(2.0)), base[:500]])
    values = values[None]
    for k in [1, 17, 1000, 123_456, values.shape[1]]:
        result = kth_largest(values, torch.tensor([k]))
        expected = values[0].sort(descending=True).values[k - 1]
        assert result.value.item() == expected.item()
        assert result.n_greater.item() == int((values > expected).sum())
        assert result.n_equal.item() == int((values == expected).sum())


def test_rejects_non_float32():
    with pytest.raises(TypeError, match="float32"):
        kth_largest(torch.zeros(1, 3, dtype=torch.float64), torch.tensor([1]))
