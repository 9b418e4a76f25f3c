"""From in-kernel log2 slots to Prometheus buckets: bounds, cumulative counts, +Inf."""
from __future__ import annotations

from exporters._lib.collector import histogram_buckets
from exporters._lib.exporter import parse_listen
from exporters._lib.spec import Histogram

import pytest


def test_buckets_are_cumulative_in_base_units():
    slots = [0] * 40
    slots[0], slots[5], slots[11], slots[12], slots[39] = 1, 2, 3, 4, 5  # 39: beyond max_slot
    buckets = histogram_buckets(slots, Histogram("nanoseconds", min_slot=10, max_slot=12))
    assert buckets == [("1.024e-06", 3), ("2.048e-06", 6), ("4.096e-06", 10), ("+Inf", 15)]


def test_byte_buckets_are_powers_of_two():
    buckets = histogram_buckets([1] * 40, Histogram("bytes", min_slot=0, max_slot=2))
    assert buckets == [("1.0", 1), ("2.0", 2), ("4.0", 3), ("+Inf", 40)]


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9451", ("127.0.0.1", 9451)), (":9451", ("0.0.0.0", 9451)), ("[::1]:80", ("::1", 80)),
])
def test_listen_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9451", "host:", "host:99999", "host:http"])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_listen(text)
