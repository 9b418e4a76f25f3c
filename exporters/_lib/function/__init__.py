"""Function components (kind: function): eBPF that changes what the kernel does, run by the same exporter.

A component's policy lives in the config (collectors.<name>.policy; checked by policy.py here). The Runtime
applies it: it attaches the component's programs through BPF links to every target the policy names
(links end with this process, whatever kills it), has the component's own policy.py write the rest into
the kernel's maps, and watches the config file, applying a new policy while the programs keep running. A
new policy that fails any check is refused, and the policy in force stays."""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.core import Metric as Family
from prometheus_client.registry import Collector

from ..bpf import Loaded
from ..spec import Spec, load_self
from ..yamlfile import YamlError
from . import links
from .eventlog import EventLog
from .links import TargetError
from .policy import PolicyError, PolicySource, check, component, parse

REFUSED = (PolicyError, TargetError, YamlError)  # a policy that cannot be applied: the component says why
WATCH_SECONDS = 1.0  # how often the config file is looked at for a new policy
HELP = {m.name: m.help for m in load_self(check=False).metrics}  # one place for the self metrics' texts: self.yaml


def start(spec: Spec, loaded: Loaded, source: PolicySource | None) -> Runtime:
    """A function component's Runtime with its policy applied. PolicyError, TargetError or YamlError when it
    is bad (or names an interface or cgroup that is not there): nothing is attached then."""
    runtime = Runtime(spec, loaded, source or PolicySource(Path("/nonexistent"), dict))
    try:
        runtime.start()
    except REFUSED:
        runtime.close()
        raise
    return runtime


class Runtime(Collector):
    def __init__(self, spec: Spec, loaded: Loaded, source: PolicySource) -> None:
        self.spec, self.loaded, self.source = spec, loaded, source
        self.module = component(spec)
        self.policy: Any = None
        self.flags: dict[str, int] = {}
        self.reloads = {"applied": 0, "refused": 0}
        self.current = 1  # 0 while the config's latest policy is refused
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.forget_labels: Callable[[], None] = lambda: None  # set by the exporter: label names may change
        self.events = EventLog(loaded.maps[spec.events].fd, self.module.events(loaded)) if spec.events else None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Apply the config's policy and start watching it; PolicyError/TargetError/YamlError when it is bad."""
        stamp = self.source.stamp()  # before reading: a change made while the policy applies is seen next
        self.apply(self.source.read())
        self.thread = threading.Thread(target=self._watch, args=(stamp,), daemon=True, name="lmp-policy")
        self.thread.start()

    def apply(self, raw: Any) -> None:
        policy = parse(self.spec, raw)
        with self.lock:
            wanted = check(self.spec, policy)
            fresh = self._attach(wanted)
            self.module.apply(self.loaded, self.policy, policy)
            for name in [n for n in self.loaded.links if n not in wanted or n in fresh]:
                self._detach(name)
            self.loaded.links.update(fresh)
            for name, link in fresh.items():
                self.flags[name] = wanted[name][2]
                if link.ifindex:
                    self.loaded.interfaces[link.ifindex] = link.target
            self.policy = policy
        self.forget_labels()

    def _attach(self, wanted: dict[str, tuple[str, str, int]]) -> dict[str, links.Link]:
        """New links for new targets (or for targets whose flags changed: those are detached first, as an
        interface holds one XDP program). All or none: a failure closes the ones just made."""
        fresh: dict[str, links.Link] = {}
        try:
            for name, (hook, target, flags) in wanted.items():
                if name in self.loaded.links and self.flags.get(name) == flags:
                    continue
                if name in self.loaded.links:
                    self._detach(name)
                links.remove_leftovers(hook, target, set(self.spec.programs.values()))
                fresh[name] = links.attach(hook, self.loaded.programs[hook], target, flags)
        except TargetError:
            for link in fresh.values():
                link.close()
            raise
        return fresh

    def _detach(self, name: str) -> None:
        link = self.loaded.links.pop(name)
        link.close()
        self.flags.pop(name, None)
        if link.ifindex:  # its counters go: the index may come back as another interface
            self.loaded.interfaces.pop(link.ifindex, None)
            self._forget_interface(link.ifindex)

    def _forget_interface(self, ifindex: int) -> None:
        for metric in self.spec.metrics:
            label = next((l for l in metric.labels if l.decoder == "interface"), None)
            if label is not None:
                counters = self.loaded.maps[metric.map]
                for key, _ in counters.items():
                    if counters.key.get(key, label.field) == ifindex:
                        counters.delete(key)

    def reload(self) -> None:
        try:
            self.apply(self.source.read())
        except (YamlError, PolicyError, TargetError) as err:
            self.reloads["refused"] += 1
            self.current = 0
            say(self.spec.name, f"new policy refused, the policy in force stays: {err}")
            return
        self.reloads["applied"] += 1
        self.current = 1
        say(self.spec.name, "new policy applied")

    def _watch(self, stamp: tuple[int, int, int] | None) -> None:
        while not self.stopping.wait(WATCH_SECONDS):
            if (now := self.source.stamp()) != stamp:
                stamp = now
                self.reload()

    def close(self) -> None:
        """Stop watching and detach every link (the exporter frees the programs and maps after)."""
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)
        if self.events:
            self.events.close()
        with self.lock:
            for name in list(self.loaded.links):
                self._detach(name)

    def collect(self) -> Iterator[Family]:
        reloads = CounterMetricFamily("lmp_exporter_policy_reloads_total", HELP["lmp_exporter_policy_reloads_total"],
                                      labels=["collector", "result"])
        for result, n in self.reloads.items():
            reloads.add_metric([self.spec.name, result], n)
        yield reloads
        current = GaugeMetricFamily("lmp_exporter_policy_current", HELP["lmp_exporter_policy_current"],
                                    labels=["collector"])
        current.add_metric([self.spec.name], self.current)
        yield current


def say(name: str, message: str) -> None:
    print(f"lmp exporter {name}: {message}", file=sys.stderr, flush=True)
