"""A collector's series budget: above it, the least active cgroups and command names fold into `other`
(`cgroup="other"`, `comm="other"`), and every total stays exact.

What folds is a metric's subject: the values of its labels that say who (its cgroup, its process's command
name, or both together). Below, "a cgroup" is any subject.

Coroot's `~other` bucket and --min-container-age, done so that counters stay counters: a cgroup's numbers
move between its own series and `other` without either going down. When a cgroup gets its own series
after time in `other`, what it had counted stays in `other` (its baseline) and its own series counts from
there; when it folds, its own series ends and `other` takes its whole count; when its keys disappear
(a removed cgroup, forgotten), what it had given `other` stays there for good."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

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


Subject = tuple[str, ...]  # the values of a label set's folding labels


@dataclass
class Table:
    """One metric's part: which labels fold (its subject), which of them is the cgroup, and how many series
    one label set makes."""
    fold: tuple[int, ...] = ()  # indices of the labels that fold together into `other`; none: nothing folds
    cgroup: int | None = None  # index of the cgroup label (one of fold): min_age holds back young cgroups
    weight: int = 1  # a histogram's label set is its buckets, _count and _sum

    def subject(self, labels: Labels) -> Subject:
        return tuple(labels[i] for i in self.fold)

    def other(self, labels: Labels) -> Labels:
        """The label set with its subject folded: `other` in each folding label."""
        return tuple(OTHER if i in self.fold else v for i, v in enumerate(labels))

    def rest(self, labels: Labels) -> Labels:
        """The labels that stay when the subject folds: what tells `other`'s series apart."""
        return tuple(v for i, v in enumerate(labels) if i not in self.fold)


@dataclass
class Budget:
    limit: int
    min_age: float = 0.0  # seconds a cgroup is first seen before it may have series of its own
    # A cgroup label that may have a series of its own: not one whose id no longer names a cgroup (removed
    # before it was first read), which would be a series no one can tell from the next; unless the subject
    # has another label that says who (an OOM victim's command name names it where its cgroup cannot).
    resolved: Callable[[str], bool] = lambda cgroup: True
    own: set[Subject] = field(default_factory=set)  # subjects with series of their own
    first_seen: dict[Subject, float] = field(default_factory=dict)
    last_events: dict[Subject, float] = field(default_factory=dict)  # per subject, at the last scrape
    aged: dict[Subject, str] = field(default_factory=dict)  # subjects with a cgroup -> the cgroup
    baseline: dict[tuple[int, Labels], Any] = field(default_factory=dict)  # kept in `other` at admission
    gave: dict[tuple[int, Labels], Any] = field(default_factory=dict)  # what each label set gave `other`
    dead: dict[tuple[int, Labels], Any] = field(default_factory=dict)  # `other`'s share of vanished label sets
    folded_total: int = 0  # times a cgroup went into `other` (first seen there, or evicted)
    in_other: set[Subject] = field(default_factory=set)
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
                if not table.fold or table.subject(labels) in self.own:
                    kept = self.baseline.get((i, labels))
                    res[labels] = add(res.get(labels), sub(value, kept))
                    to_other = kept
                else:
                    to_other = value
                    self.baseline.pop((i, labels), None)
                if to_other is not None and table.fold:
                    other = table.other(labels)
                    res[other] = add(res.get(other), to_other)
                    gave[(i, labels)] = to_other
            out.append(res)
        for key, share in self.gave.items():  # label sets gone since the last scrape: their share stays
            if key not in gave:
                self.dead[key] = add(self.dead.get(key), share)
                self.baseline.pop(key, None)
        self.gave = gave
        for (i, labels), share in self.dead.items():
            other = tables[i].other(labels)
            out[i][other] = add(out[i].get(other), share)
        self._compact_dead(tables)
        self.series = sum(len(res) * t.weight for t, res in zip(tables, out))
        return out

    def _activity(self, tables: list[Table], values: list[Values], now: float) -> dict[Subject, float]:
        """Each subject's events since the last scrape (all of them, the first time it is seen)."""
        totals: dict[Subject, float] = {}
        self.aged = {}
        for table, vals in zip(tables, values):
            if table.fold:
                for labels, value in vals.items():
                    subject = table.subject(labels)
                    totals[subject] = totals.get(subject, 0) + events(value)
                    if table.cgroup is not None:
                        self.aged[subject] = labels[table.cgroup]
        recent = {s: n - self.last_events.get(s, 0) for s, n in totals.items()}
        self.last_events = totals
        self.first_seen = {s: self.first_seen.get(s, now) for s in totals}
        self.own &= set(totals)
        return recent

    def _choose(self, tables: list[Table], values: list[Values], activity: dict[Subject, float], now: float) -> None:
        """Keep the active cgroups that have series while they fit, then admit the most active of the others
        that are old enough, while they fit. `other` is budgeted as if every
        cgroup without series of its own were in it."""
        cost: dict[Subject, int] = dict.fromkeys(activity, 0)
        fixed, other = 0, set()
        for i, (table, vals) in enumerate(zip(tables, values)):
            for labels in vals:
                if not table.fold:
                    fixed += table.weight
                else:
                    cost[table.subject(labels)] += table.weight
                    other.add((i, table.rest(labels)))
        for i, labels in self.dead:  # `other`'s series of vanished label sets stay
            other.add((i, tables[i].rest(labels)))
        room = self.limit - fixed - sum(tables[i].weight for i, _ in other)
        before = set(self.own)
        # Active cgroups first, those with series before the others (series that come and go each scrape
        # would churn Prometheus); an idle cgroup gives its place to an active one.
        ranked = sorted(activity, key=lambda who: (activity[who] > 0, who in self.own, activity[who]), reverse=True)
        self.own = set()
        for who in ranked:
            cgroup = self.aged.get(who)
            mature = cgroup is None or who in before or now - self.first_seen[who] >= self.min_age
            if mature and cost[who] <= room and (cgroup is None or len(who) > 1 or self.resolved(cgroup)):
                self.own.add(who)
                room -= cost[who]
                if who not in before:  # its past stays in `other`; its own series counts from here
                    self._set_baseline(tables, values, who)
        self.folded_total += len((set(activity) - self.own) - self.in_other)
        self.in_other = set(activity) - self.own

    def _set_baseline(self, tables: list[Table], values: list[Values], who: Subject) -> None:
        for i, (table, vals) in enumerate(zip(tables, values)):
            if not table.fold:
                continue
            for labels, value in vals.items():
                if table.subject(labels) == who and (i, labels) in self.gave:
                    self.baseline[(i, labels)] = self.gave[(i, labels)]

    def _compact_dead(self, tables: list[Table]) -> None:
        """Vanished label sets that fold into the same `other` series are one number: bounded by `other`."""
        merged: dict[tuple[int, Labels], Any] = {}
        for (i, labels), share in self.dead.items():
            key = (i, tables[i].other(labels))
            merged[key] = add(merged.get(key), share)
        self.dead = merged
