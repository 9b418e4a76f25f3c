/* oomkill: tasks the OOM killer chose as victims, by the victim's command name and cgroup.
 *
 * oom:mark_victim fires once per victim, in mark_oom_victim() (mm/oom_kill.c), when the OOM killer has
 * sent it SIGKILL (or found it already exiting) and gives it access to memory reserves. The task running
 * then (`current`) is the one whose allocation failed, not the victim: on a host-wide OOM it can be any
 * process. So this is a raw tracepoint, whose first argument is the victim's task_struct; the victim's
 * command and cgroup are read from it at byte offsets the exporter takes from the kernel's BTF
 * (-DBTF_<struct>_<field>), never from headers.
 * The argument is the task since "mm: update mark_victim tracepoints fields" (Linux 6.9, backported to
 * older stable series: Debian 12's 6.1 has it); before, it was the victim's pid. */
#include "lmp.h"

/* (command, cgroup) pairs: OOM kills are rare, a host that has seen this many is in trouble anyway. */
#define MAX_VICTIMS 1024
/* Larger than any pid (PID_MAX_LIMIT is 2^22) and smaller than any kernel address: tells a task pointer
 * from the pid an older kernel passes. */
#define MAX_PID_VALUE (1UL << 22)

struct victim {
    u64 cgroup; /* cgroup v2 id of the victim; 0 unless -DCGROUP=1 */
    char comm[16];
};

BPF_HASH(oom_kills_total, struct victim, u64, MAX_VICTIMS);

/* Follows one pointer at a byte offset inside a kernel object; 0 when it cannot be read. */
static __always_inline void *follow(void *object, u64 offset)
{
    void *next = 0;
    if (object)
        bpf_probe_read_kernel(&next, sizeof(next), object + offset);
    return next;
}

RAW_TRACEPOINT_PROBE(mark_victim)
{
    void *task = (void *)ctx->args[0];
    struct victim key = {};
    if ((u64)task >= MAX_PID_VALUE) {
        bpf_probe_read_kernel_str(&key.comm, sizeof(key.comm), task + BTF_task_struct_comm);
#if CGROUP
        /* What bpf_get_current_cgroup_id() does for current: task->cgroups->dfl_cgrp->kn->id. */
        void *kn = follow(follow(follow(task, BTF_task_struct_cgroups), BTF_css_set_dfl_cgrp), BTF_cgroup_kn);
        if (kn)
            bpf_probe_read_kernel(&key.cgroup, sizeof(key.cgroup), kn + BTF_kernfs_node_id);
#endif
    }
    u64 zero = 0;
    u64 *kills = oom_kills_total.lookup_or_try_init(&key, &zero);
    if (kills)
        __sync_fetch_and_add(kills, 1); /* one hash for all CPUs: two OOMs can race */
    else
        LMP_OVERFLOW(oom_kills_total);
    return 0;
}
