"""Fuzzing the two bodies an admin writes into the config: the whole config (YAML, PUT /config) and a
function component's policy (JSON, PUT /components/NAME/policy), with nesting, anchors and aliases, tags and
values of every type. Whatever is sent: never a 5xx, and the file on disk always loads; what is accepted
is exactly what was sent."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters._lib import paths
from lmp import config as configs

SCALARS = st.one_of(
    st.sampled_from(["observe", "enforce", "deny", "allow", "10.0.0.0/8", "10.0.0.1/8", "'::1'", "lo", "/", "0", "1",
                     "65536", "-1", "null", "~", "''", "yes", "1e999", ".nan", "2001-01-01", "'*x'", "'&x'"]),
    st.text(alphabet="abcxyz019._-/:", min_size=1, max_size=8).map(json.dumps),
)
KEYS = st.sampled_from(["mode", "interfaces", "blocklist", "rate_limit", "packets_per_second", "burst", "cgroups",
                        "destinations", "policy", "cidr", "ports", "listen", "enabled", "x", "'<<'"])
DECORATIONS = ["{}", "!foo {}", "!!str {}", "!!python/object/apply:os.system {}", "&a {}", "&b {}", "*a", "*b",
               "<<: *a", "!!binary {}"]


def flow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.lists(children, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
                     st.dictionaries(KEYS, children, max_size=3).map(
                         lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"))


def decorated(node: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(node, st.sampled_from(DECORATIONS)).map(lambda t: t[1].format(t[0]) if "{}" in t[1] else t[1])


YAML_NODE = st.recursive(SCALARS, lambda children: decorated(flow(decorated(children))), max_leaves=25)
DEEP = st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n)
BOMB = st.integers(min_value=2, max_value=9).map(
    lambda n: "{" + ", ".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
                              + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, n)]) + "}")
PLACES = ["      blocklist: []", "      interfaces: []", "      destinations: []", "      mode: observe",
          "  scrape_interval: 5s", "listen_address: 127.0.0.1", "disable_defaults: false"]


@st.composite
def configs_with_a_fragment(draw: st.DrawFn) -> str:
    text = paths.DEFAULT_CONFIG.read_text()
    place = draw(st.sampled_from(PLACES))
    key = place.split(":")[0]
    fragment = draw(st.one_of(YAML_NODE, DEEP, BOMB))
    return text.replace(place, f"{key}: {fragment}", 1)


def admin_headers(auth) -> dict:  # type: ignore[no-untyped-def]
    """One login per test, not per example (the fixtures live as long as the test)."""
    if not hasattr(auth, "root"):
        auth.root = auth.headers("root")
    return auth.root


def check_file_loads(config_file) -> None:  # type: ignore[no-untyped-def]
    configs.load(config_file)  # raises if what is on disk does not load


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=configs_with_a_fragment())
def test_any_config_body_is_saved_whole_or_refused_with_a_4xx(client, auth, config_file, text):
    root = admin_headers(auth)
    before = config_file.read_text()
    etag = client.get("/api/v1/config", headers=root).headers["ETag"]
    response = client.put("/api/v1/config", data=text, headers={**root, "If-Match": etag})
    assert response.status_code in (204, 422), (response.status_code, response.get_data(as_text=True)[:300])
    assert config_file.read_text() == (text if response.status_code == 204 else before)
    check_file_loads(config_file)


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.floats(allow_nan=False),
                         st.sampled_from(["observe", "enforce", "deny", "allow", "lo", "/", "10.0.0.0/8", "::1",
                                          "192.0.2.0/24", "10.0.0.1/8", "", "*a", "!foo x", "&a x"]))
JSON_KEYS = st.sampled_from(["mode", "interfaces", "blocklist", "rate_limit", "packets_per_second", "burst", "cgroups",
                             "destinations", "policy", "cidr", "ports", "extra"])
JSON_VALUE = st.recursive(JSON_SCALARS, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(JSON_KEYS, c, max_size=4)),
                          max_leaves=30)


def nest(value: object, depth: int) -> object:
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["netguard", "connguard"]), policy=st.dictionaries(JSON_KEYS, JSON_VALUE, max_size=5),
       depth=st.one_of(st.just(0), st.integers(0, 900)))  # json.dumps itself stops near 1000
def test_any_policy_body_is_saved_as_sent_or_refused_with_a_4xx(client, auth, config_file, name, policy, depth):
    root = admin_headers(auth)
    body = {**policy, "blocklist": nest(policy.get("blocklist", []), depth)} if depth else policy
    before = config_file.read_text()
    response = client.put(f"/api/v1/components/{name}/policy", data=json.dumps(body), content_type="application/json",
                          headers=root)
    assert response.status_code in (200, 400, 422), (response.status_code, response.get_data(as_text=True)[:300])
    if response.status_code == 200:
        assert configs.load(config_file).collectors[name].policy == body
        assert client.get(f"/api/v1/components/{name}/policy", headers=root).json == body
    else:
        assert config_file.read_text() == before
    check_file_loads(config_file)
