"""A collector's series budget: above it, the least active cgroups fold into one `cgroup="other"`, and every
total stays exact.

Coroot's `~other` bucket and --min-container-age, done so that counters stay counters: a cgroup's numbers
move between its own series and `other` without either going down. When a cgroup gets its own series
after time in `other`, what it had counted stays in `other` (its baseline) and its own series counts from
there; when it folds, its own series ends and `other` takes its whole count; when its keys disappear
(a removed cgroup, forgotten), what it had given `other` stays there for good."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

OTHER = "other"
Labels = tuple[str, ...]
Values = dict[Labels, Any]  # label values -> a count, or a histogram as (slots, sum)


def add(a: Any, b: Any) -> Any:
    """Two counts, or two histograms as (slots, sum); None is nothing yet."""
    if a is None:
        return b
    if isinstance(a, (int, float)):
        return a + b
    return [x + y for x, y in zip(a[0], b[0])], a[1] + b[1]


def sub(a: Any, b: Any) -> Any:
    if b is None:
        return a
    if isinstance(a, (int, float)):
        return a - b
    return [x - y for x, y in zip(a[0], b[0])], a[1] - b[1]


def events(value: Any) -> float:
    """How much a value counted: the count, or a histogram's observations."""
    return value if isinstance(value, (int, float)) else sum(value[0])


@dataclass
class Table:
    """One metric's part: where its cgroup label is, and how many series one label set makes."""
    fold: int | None  # index of the cgroup label; None: nothing to fold
    weight: int = 1  # a histogram's label set is its buckets, _count and _sum


@dataclass
class Budget:
    limit: int
    min_age: float = 0.0  # seconds a cgroup is first seen before it may have series of its own
    own: set[str] = field(default_factory=set)  # cgroups with series of their own
    first_seen: dict[str, float] = field(default_factory=dict)
    last_events: dict[str, float] = field(default_factory=dict)  # per cgroup, at the last scrape
    baseline: dict[tuple[int, Labels], Any] = field(default_factory=dict)  # kept in `other` at admission
    gave: dict[tuple[int, Labels], Any] = field(default_factory=dict)  # what each label set gave `other`
    dead: dict[tuple[int, Labels], Any] = field(default_factory=dict)  # `other`'s share of vanished label sets
    folded_total: int = 0  # times a cgroup went into `other` (first seen there, or evicted)
    in_other: set[str] = field(default_factory=set)
    series: int = 0  # series the last scrape exported

    def apply(self, tables: list[Table], values: list[Values], now: float | None = None) -> list[Values]:
        """The metrics' values with the cgroups over the budget folded into `other`."""
        now = time.monotonic() if now is None else now
        activity = self._activity(tables, values, now)
        self._choose(tables, values, activity, now)
        out: list[Values] = []
        gave: dict[tuple[int, Labels], Any] = {}
        for i, (table, vals) in enumerate(zip(tables, values)):
            res: Values = {}
            for labels, value in vals.items():
                if table.fold is None or labels[table.fold] in self.own:
                    kept = self.baseline.get((i, labels))
                    res[labels] = add(res.get(labels), sub(value, kept))
                    to_other = kept
                else:
                    to_other = value
                    self.baseline.pop((i, labels), None)
                if to_other is not None and table.fold is not None:
                    other = labels[:table.fold] + (OTHER,) + labels[table.fold + 1:]
                    res[other] = add(res.get(other), to_other)
                    gave[(i, labels)] = to_other
            out.append(res)
        for key, share in self.gave.items():  # label sets gone since the last scrape: their share stays
            if key not in gave:
                self.dead[key] = add(self.dead.get(key), share)
                self.baseline.pop(key, None)
        self.gave = gave
        for (i, labels), share in self.dead.items():
            fold = tables[i].fold
            assert fold is not None
            other = labels[:fold] + (OTHER,) + labels[fold + 1:]
            out[i][other] = add(out[i].get(other), share)
        self._compact_dead(tables)
        self.series = sum(len(res) * t.weight for t, res in zip(tables, out))
        return out

    def _activity(self, tables: list[Table], values: list[Values], now: float) -> dict[str, float]:
        """Each cgroup's events since the last scrape (all of them, the first time it is seen)."""
        totals: dict[str, float] = {}
        for table, vals in zip(tables, values):
            if table.fold is not None:
                for labels, value in vals.items():
                    totals[labels[table.fold]] = totals.get(labels[table.fold], 0) + events(value)
        recent = {cg: n - self.last_events.get(cg, 0) for cg, n in totals.items()}
        self.last_events = totals
        self.first_seen = {cg: self.first_seen.get(cg, now) for cg in totals}
        self.own &= set(totals)
        return recent

    def _choose(self, tables: list[Table], values: list[Values], activity: dict[str, float], now: float) -> None:
        """Keep the active cgroups that have series while they fit, then admit the most active of the others
        that are old enough, while they fit. `other` is budgeted as if every
        cgroup without series of its own were in it."""
        cost: dict[str, int] = dict.fromkeys(activity, 0)
        fixed, other = 0, set()
        for i, (table, vals) in enumerate(zip(tables, values)):
            for labels in vals:
                if table.fold is None:
                    fixed += table.weight
                else:
                    cost[labels[table.fold]] += table.weight
                    other.add((i, labels[:table.fold] + labels[table.fold + 1:]))
        for i, labels in self.dead:  # `other`'s series of vanished label sets stay
            fold = tables[i].fold
            assert fold is not None
            other.add((i, labels[:fold] + labels[fold + 1:]))
        room = self.limit - fixed - sum(tables[i].weight for i, _ in other)
        before = set(self.own)
        # Active cgroups first, those with series before the others (series that come and go each scrape
        # would churn Prometheus); an idle cgroup gives its place to an active one.
        ranked = sorted(activity, key=lambda cg: (activity[cg] > 0, cg in self.own, activity[cg]), reverse=True)
        self.own = set()
        for cg in ranked:
            mature = cg in before or now - self.first_seen[cg] >= self.min_age
            if mature and cost[cg] <= room:
                self.own.add(cg)
                room -= cost[cg]
                if cg not in before:  # its past stays in `other`; its own series counts from here
                    self._set_baseline(tables, values, cg)
        self.folded_total += len((set(activity) - self.own) - self.in_other)
        self.in_other = set(activity) - self.own

    def _set_baseline(self, tables: list[Table], values: list[Values], cg: str) -> None:
        for i, (table, vals) in enumerate(zip(tables, values)):
            if table.fold is None:
                continue
            for labels, value in vals.items():
                if labels[table.fold] == cg and (i, labels) in self.gave:
                    self.baseline[(i, labels)] = self.gave[(i, labels)]

    def _compact_dead(self, tables: list[Table]) -> None:
        """Vanished label sets that fold into the same `other` series are one number: bounded by `other`."""
        merged: dict[tuple[int, Labels], Any] = {}
        for (i, labels), share in self.dead.items():
            fold = tables[i].fold
            assert fold is not None
            key = (i, labels[:fold] + (OTHER,) + labels[fold + 1:])
            merged[key] = add(merged.get(key), share)
        self.dead = merged
