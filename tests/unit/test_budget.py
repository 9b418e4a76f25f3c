"""The series budget: cgroups over it fold into `other`, totals stay exact and counters never go down."""
from __future__ import annotations

import pytest

from exporters._lib import catalog
from exporters._lib.budget import OTHER, Budget, Table
from exporters._lib.spec import parse_option

TABLES = [Table(fold=(0,), cgroup=0), Table()]  # a metric by (cgroup, code), and one without a cgroup


def total(values: dict) -> int:
    return sum(values.values())


def test_within_budget_nothing_folds():
    b = Budget(limit=10)
    out = b.apply(TABLES, [{("/a", "1"): 5, ("/b", "1"): 3}, {("x",): 1}], now=0)
    assert out == [{("/a", "1"): 5, ("/b", "1"): 3}, {("x",): 1}] and b.series == 3 and b.folded_total == 0


def test_least_active_fold_and_totals_stay_exact_and_monotonic():
    b = Budget(limit=4)  # 1 fixed series, 1 for `other`: room for two cgroups
    kernel = {("/a", "1"): 50, ("/b", "1"): 1, ("/c", "1"): 20}
    out = b.apply(TABLES, [dict(kernel), {("x",): 1}], now=0)[0]
    assert set(out) == {("/a", "1"), ("/c", "1"), (OTHER, "1")} and out[(OTHER, "1")] == 1
    assert total(out) == total(kernel) and b.series <= 4 and b.folded_total == 1
    previous = out
    for step in range(1, 20):  # /b becomes the busiest: it gets a series; /c, now idle, folds
        kernel[("/b", "1")] += 100
        kernel[("/a", "1")] += 10
        out = b.apply(TABLES, [dict(kernel), {("x",): 1}], now=step)[0]
        assert total(out) == total(kernel) and b.series <= 4
        assert out[(OTHER, "1")] >= previous.get((OTHER, "1"), 0)  # `other` never goes down
        for labels, n in out.items():
            assert labels not in previous or n >= previous[labels], labels
        previous = out
    assert ("/b", "1") in out and ("/c", "1") not in out


def test_young_cgroups_count_into_other_until_old_enough():
    b = Budget(limit=100, min_age=10)
    out = b.apply(TABLES[:1], [{("/new", "1"): 7}], now=0)[0]
    assert out == {(OTHER, "1"): 7} and b.folded_total == 1
    out = b.apply(TABLES[:1], [{("/new", "1"): 9}], now=10)[0]
    assert out == {(OTHER, "1"): 7, ("/new", "1"): 2}  # its past stays in `other`; its own series counts on


def test_vanished_cgroups_leave_their_share_in_other():
    b = Budget(limit=2)  # room for `other` and one cgroup
    b.apply(TABLES[:1], [{("/a", "1"): 5, ("/b", "1"): 1}], now=0)
    out = b.apply(TABLES[:1], [{("/a", "1"): 5}], now=1)[0]  # /b removed and forgotten
    assert out == {("/a", "1"): 5, (OTHER, "1"): 1}
    for step in range(2, 5):  # many more come and go, folded: `other` stays one series, with every count
        b.apply(TABLES[:1], [{("/a", "1"): 5 + step, (f"/x{step}", "1"): 1, (f"/y{step}", "1"): 1}], now=step)
    out = b.apply(TABLES[:1], [{("/a", "1"): 10}], now=9)[0]
    assert out == {("/a", "1"): 10, (OTHER, "1"): 7} and len(b.dead) == 1  # 1 + 3 x 2: the dead's share


def test_histograms_fold_bucket_by_bucket():
    b = Budget(limit=4)
    table = [Table(fold=(0,), cgroup=0, weight=2)]
    out = b.apply(table, [{("/a",): ([1, 2], 10), ("/b",): ([0, 1], 4)}], now=0)[0]
    assert sorted(out.values()) == [([0, 1], 4), ([1, 2], 10)] and b.series == 4
    assert (OTHER,) in out


def test_core_options_refuse_what_cannot_work():
    spec = catalog.load("signal", check=False)
    assert parse_option(spec, "series_budget=50") == ("series_budget", 50)
    with pytest.raises(ValueError, match="option series_budget is at least 1, not 0"):
        parse_option(spec, "series_budget=0")
    with pytest.raises(ValueError, match="option min_cgroup_age is at least 0, not -5"):
        parse_option(spec, "min_cgroup_age=-5")


def test_a_subject_of_two_labels_folds_as_one_and_a_command_name_is_never_too_young():
    b = Budget(limit=3, min_age=10)  # `other` and two (comm, cgroup) pairs
    table = [Table(fold=(0, 1), cgroup=1)]  # a metric by (comm, cgroup, code)
    out = b.apply(table, [{("a", "/x", "1"): 1, ("b", "/x", "1"): 9}], now=0)[0]
    assert out == {(OTHER, OTHER, "1"): 10}  # both young
    kernel = {("a", "/x", "1"): 1, ("b", "/x", "1"): 14, ("c", "/y", "1"): 7}
    out = b.apply(table, [kernel], now=10)[0]
    assert set(out) == {("a", "/x", "1"), ("b", "/x", "1"), (OTHER, OTHER, "1")}  # (c, /y) is young
    assert total(out) == total(kernel) and out[("b", "/x", "1")] == 5  # its past stays in `other`
    commands = Budget(limit=2, min_age=10)
    out = commands.apply([Table(fold=(0,))], [{("a", "1"): 3, ("b", "1"): 1}], now=0)[0]
    assert out == {("a", "1"): 3, (OTHER, "1"): 1}  # no cgroup, no age: admitted at once


def test_an_unresolved_cgroup_never_has_a_series_of_its_own():
    b = Budget(limit=100, resolved=lambda cgroup: not cgroup.startswith("cgroup_"))
    out = b.apply(TABLES[:1], [{("cgroup_123", "1"): 4, ("/a", "1"): 1}], now=0)[0]
    assert out == {("/a", "1"): 1, (OTHER, "1"): 4}


def test_an_unresolved_cgroup_keeps_a_series_when_another_label_names_it():
    """An OOM victim's cgroup is often gone by the next scrape; its command name still says who it was."""
    b = Budget(limit=100, resolved=lambda cgroup: not cgroup.startswith("cgroup_"))
    out = b.apply([Table(fold=(0, 1), cgroup=1)], [{("victim", "cgroup_123"): 1, ("other-app", "/a"): 2}], now=0)[0]
    assert out == {("victim", "cgroup_123"): 1, ("other-app", "/a"): 2}
