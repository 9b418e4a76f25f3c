"""oomkill: two processes share a memory-limited cgroup; the one that allocates past the limit is not the
one the OOM killer picks. The exporter must name the victim, and the victim's cgroup, not the allocator's."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.workloads import TRIGGER, VICTIM, OomGroups, cgroup_oom_kills, oom_groups, oom_kill
from tests.conftest import delta

NAME = "lmp_oom_kills_total"


@pytest.fixture
def groups() -> Iterator[OomGroups]:
    with oom_groups() as made:
        yield made


def test_the_victim_is_named_with_its_own_cgroup(exporter, groups):
    labelled = exporter("oomkill")
    plain = exporter("oomkill", "-o", "cgroup=false")
    before, before_plain = labelled.scrape(), plain.scrape()
    kills_before = cgroup_oom_kills(groups.memory)
    oom_kill(groups)
    after, after_plain = labelled.scrape(), plain.scrape()

    assert cgroup_oom_kills(groups.memory) - kills_before == 1  # the kernel's count: one kill, in this cgroup
    assert delta(before, after, NAME, comm=VICTIM, cgroup=groups.label(groups.victim)) == 1
    assert delta(before_plain, after_plain, NAME, comm=VICTIM) == 1
    # Not the allocating task, not its cgroup (which bpf_get_current_cgroup_id() would have given).
    samples = after.families["lmp_oom_kills"].samples
    assert not [s for s in samples if s.labels["comm"] == TRIGGER or s.labels["cgroup"] == groups.label(groups.trigger)]
    assert all("cgroup" not in s.labels for s in after_plain.families["lmp_oom_kills"].samples)
