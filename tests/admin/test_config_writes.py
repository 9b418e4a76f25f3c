"""Config writes under concurrency: requests against a running `lmp admin serve`, released together at a
barrier, many rounds. If-Match is honoured atomically, no request sees another's check, and an operator's
switch racing an admin's PUT is never lost."""
from __future__ import annotations

import re

from lmp import config as configs

from .served import Service, service, together  # noqa: F401 - service: a fixture

ROUNDS = 30


def read(service: Service, token: str) -> tuple[str, str]:
    answer = service.call("GET", "/api/v1/config", token)
    return answer.body, answer.headers["etag"]


def interval(text: str, value: str) -> str:
    return re.sub(r"scrape_interval: \S+", f"scrape_interval: {value}", text, count=1)


def put(service: Service, token: str, text: str, etag: str):  # type: ignore[no-untyped-def]
    return lambda: service.call("PUT", "/api/v1/config", token, data=text,
                                headers={"If-Match": etag, "Content-Type": "application/yaml"})


def test_of_two_puts_from_one_version_exactly_one_wins(service):
    token = service.login("root")
    for n in range(ROUNDS):
        text, etag = read(service, token)
        edits = [interval(text, f"{10 * n + i}s") for i in (1, 2)]
        answers = together([put(service, token, edit, etag) for edit in edits])
        assert sorted(a.status for a in answers) == [204, 412], [(a.status, a.body) for a in answers]
        winner = edits[[a.status for a in answers].index(204)]
        assert service.config.read_text() == winner  # the winner's edit, whole, and nothing of the loser's


BAD = [("retention: ", "retention: often #", "'often' is not a duration"),
       ("listen: 127.0.0.1:9490", "listen: nowhere", "'nowhere' is not HOST:PORT"),
       ("  netguard:\n", "  netguardd:\n", "no collector named 'netguardd'")]


def test_bad_puts_racing_a_good_one_save_nothing_and_each_gets_its_own_reason(service):
    token = service.login("root")
    for n in range(ROUNDS):
        text, etag = read(service, token)
        good = re.sub(r"retention: \S+", f"retention: {n + 1}d", text, count=1)
        work = [put(service, token, good, etag)] + [put(service, token, text.replace(old, new, 1), etag)
                                                   for old, new, _ in BAD]
        answers = together(work)
        assert answers[0].status == 204, answers[0].body
        for answer, (_, _, reason) in zip(answers[1:], BAD):
            # refused for its own mistake (or, once the good edit is in, as stale): never another request's
            assert (answer.status == 422 and reason in answer.body["message"]) or answer.status == 412, answer.body
        assert service.config.read_text() == good
        configs.load(service.config)  # what is on disk always loads
    assert not list(service.config.parent.glob(".lmp.yaml*"))  # no file of any check left behind


def test_an_operator_switching_a_collector_racing_an_admins_put(service):
    root, ops = service.login("root"), service.login("ops")
    for n in range(ROUNDS):
        text, etag = read(service, root)
        enabled = configs.load(service.config).collectors["runqlat"].enabled
        edited = interval(text, f"{1000 + n}s")
        switch = "disable" if enabled else "enable"
        answers = together([put(service, root, edited, etag),
                            lambda: service.call("POST", f"/api/v1/components/runqlat/{switch}", ops)])
        assert answers[1].status == 200, answers[1].body  # the switch always works
        assert answers[0].status in (204, 412), answers[0].body  # the PUT wins, or finds the switch came first
        after = configs.load(service.config)
        assert after.collectors["runqlat"].enabled is not enabled  # the switch is never lost
        assert (after.prometheus.scrape_interval == f"{1000 + n}s") == (answers[0].status == 204)
