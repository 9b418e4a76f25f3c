"""From in-kernel log2 slots to Prometheus buckets, and the exposition's escaping."""
from __future__ import annotations

import pytest

from exporters._lib import exposition
from exporters._lib.collector import histogram_buckets
from exporters._lib.exporter import parse_listen, scrape_url
from exporters._lib.spec import Histogram


def kernel_slot(value: int) -> int:
    """lmp.h's lmp_hist_observe slot, in Python: bpf_log2l(x) is floor(log2(x)) + 1 for x >= 1."""
    log2l = lambda x: x.bit_length()  # noqa: E731  (floor(log2(x)) + 1; 0 for 0)
    return min(log2l(value - 1) if value > 1 else 0, 39)


@pytest.mark.parametrize("value", [0, 1, 2, 3, 4, 5, 1023, 1024, 1025, 4096, 10**6, 2**34, 2**34 + 1, 2**45])
def test_each_value_is_in_every_bucket_whose_bound_is_at_least_it(value):
    slots = [0] * 40
    slots[kernel_slot(value)] = 1
    for le, count in histogram_buckets(slots, Histogram("bytes", min_slot=0, max_slot=34)):
        assert count == (1 if le == "+Inf" or value <= float(le) else 0), (value, le)


def test_buckets_are_cumulative_in_base_units():
    slots = [0] * 40
    slots[0], slots[5], slots[11], slots[12], slots[39] = 1, 2, 3, 4, 5  # 39: beyond max_slot
    buckets = histogram_buckets(slots, Histogram("nanoseconds", min_slot=10, max_slot=12))
    assert buckets == [("1.024e-06", 3), ("2.048e-06", 6), ("4.096e-06", 10), ("+Inf", 15)]


def test_escaping_and_openmetrics_family_names():
    assert exposition.labels(["path", "comm"], ('/a"b\\c', "x\ny")) == r'path="/a\"b\\c",comm="x\ny"'
    assert exposition.braces("") == "" and exposition.braces('a="1"') == '{a="1"}'
    assert exposition.header("lmp_x_total", "counter", "Line\none", openmetrics=True) == \
        "# HELP lmp_x Line\\none\n# TYPE lmp_x counter\n"
    assert exposition.header("lmp_x_total", "counter", "h", openmetrics=False).startswith("# HELP lmp_x_total h\n")


@pytest.mark.parametrize("text, expected, url", [
    ("127.0.0.1:9451", ("127.0.0.1", 9451), "http://127.0.0.1:9451/metrics"),
    (":9451", ("0.0.0.0", 9451), "http://127.0.0.1:9451/metrics"),
    ("[::1]:80", ("::1", 80), "http://[::1]:80/metrics"),
])
def test_listen_addresses(text, expected, url):
    assert parse_listen(text) == expected
    assert scrape_url(text) == url


@pytest.mark.parametrize("text", ["9451", "host:", "host:99999", "host:http", "host:0"])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_listen(text)
