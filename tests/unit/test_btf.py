"""Struct field offsets from the running kernel's BTF."""
from __future__ import annotations

import pytest

from exporters._lib.bpf import LoadError, btf_offsets


def test_offsets_of_task_struct_fields():
    offsets = btf_offsets(("task_struct.pid", "task_struct.tgid", "task_struct.exit_code"))
    assert offsets["task_struct.tgid"] == offsets["task_struct.pid"] + 4  # pid_t pid; pid_t tgid; in every kernel
    assert 0 < offsets["task_struct.exit_code"] < offsets["task_struct.pid"]


def test_a_missing_field_is_named():
    with pytest.raises(LoadError, match="the kernel's BTF has no task_struct.no_such_field"):
        btf_offsets(("task_struct.no_such_field",))


def test_a_field_inside_an_anonymous_union_is_found():
    # struct tcp_skb_cb { __u32 seq; __u32 end_seq; union { __u32 tcp_tw_isn; struct { u16 tcp_gso_segs;
    # u16 tcp_gso_size; }; }; ... }: the segments count follows end_seq, two levels down.
    offsets = btf_offsets(("tcp_skb_cb.end_seq", "tcp_skb_cb.tcp_gso_segs", "tcp_skb_cb.tcp_gso_size"))
    assert offsets["tcp_skb_cb.tcp_gso_segs"] == offsets["tcp_skb_cb.end_seq"] + 4
    assert offsets["tcp_skb_cb.tcp_gso_size"] == offsets["tcp_skb_cb.tcp_gso_segs"] + 2
