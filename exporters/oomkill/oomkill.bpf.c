/* oomkill: tasks the OOM killer chose as victims, by the victim's command name and cgroup.
 *
 * oom:mark_victim fires once per victim, in mark_oom_victim() (mm/oom_kill.c), when the OOM killer has
 * sent it SIGKILL (or found it already exiting) and gives it access to memory reserves. The task running
 * then (`current`) is the one whose allocation failed, not the victim: on a host-wide OOM it can be any
 * process. So the victim is read from the tracepoint's first argument, its task_struct, through CO-RE.
 * The argument is the task since "mm: update mark_victim tracepoints fields" (Linux 6.9, backported to
 * older stable series: Debian 12's 6.1 has it); before, it was the victim's pid. A raw tracepoint (whose
 * arguments are plain numbers to the verifier) serves both, where tp_btf would insist on one type; OOM
 * kills are rare, so its reads' cost does not matter. */
#include "lmp.h"

/* (command, cgroup) pairs: OOM kills are rare, a host that has seen this many is in trouble anyway. */
#define MAX_VICTIMS 1024
/* Larger than any pid (PID_MAX_LIMIT is 2^22) and smaller than any kernel address: tells a task pointer
 * from the pid an older kernel passes. */
#define MAX_PID_VALUE (1UL << 22)

/* Options (the spec's), set by the exporter before the programs load. */
const volatile bool cgroup = false;

struct victim {
    u64 cgroup; /* cgroup v2 id of the victim; 0 unless the cgroup option is on */
    char comm[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_VICTIMS);
    __type(key, struct victim);
    __type(value, u64);
} oom_kills_total SEC(".maps");
LMP_OVERFLOW_COUNTER(oom_kills_total);

SEC("raw_tp/mark_victim")
int BPF_PROG(mark_victim, struct task_struct *task)
{
    struct victim key = {};
    if ((u64)task >= MAX_PID_VALUE) {
        BPF_CORE_READ_STR_INTO(&key.comm, task, comm);
        /* What bpf_get_current_cgroup_id() does for current: task->cgroups->dfl_cgrp->kn->id. */
        if (cgroup)
            key.cgroup = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
    }
    u64 *kills = LMP_LOOKUP_OR_ZERO(oom_kills_total, &key);
    if (kills)
        __sync_fetch_and_add(kills, 1); /* one hash for all CPUs: two OOMs can race */
    else
        LMP_OVERFLOW(oom_kills_total);
    return 0;
}
