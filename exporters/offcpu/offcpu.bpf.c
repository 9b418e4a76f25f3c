/* offcpu: how long threads spend off the CPU, and why they left it: preempted, sleeping, waiting
 * uninterruptibly (disk I/O, kernel locks), or stopped.
 *
 * sched_switch runs while `current` is still the thread going off the CPU (prev): its switch-out time,
 * reason and cgroup wait in `off_since` under its thread id. When a later sched_switch picks that
 * thread as `next`, the time off the CPU is observed into a log2 histogram keyed by (reason, cgroup).
 * bcc's offcputime measures the same interval with a kprobe on finish_task_switch; this uses only the
 * tracepoint. */
#include "lmp.h"

/* Threads off the CPU at once: every sleeping thread on the host. A plain hash, not an LRU one: an
 * LRU update costs several times more on this, the hottest path (see runqlat). Entries do not leak:
 * each is deleted when its thread runs again, and dead threads (X, Z) are never stored. */
#define MAX_THREADS 32768
/* (reason, cgroup) pairs: 4 reasons for each cgroup seen. */
#define MAX_SERIES 4096

/* prev_state's low byte holds one TASK_REPORT bit (S 0x1, D 0x2, T 0x4, t 0x8, X 0x10, Z 0x20, P 0x40,
 * I 0x80); 0x100 (TASK_REPORT_MAX) marks a preemption. Format since v4.14 (commit efb40f588b43,
 * "sched/tracing: Fix trace_sched_switch task-state"), printed in events/sched/sched_switch/format. */
#define TASK_STATE_BITS 0xff
#define STATE_INTERRUPTIBLE 0x01
#define STATE_UNINTERRUPTIBLE 0x02
#define STATE_DEAD 0x30 /* X, Z: the thread's last switch; it never comes back */
#define STATE_IDLE 0x80 /* TASK_IDLE: an uninterruptible wait that does not count as load (idle kthreads) */

/* Reasons, in the order of the spec's `reason` label values. */
#define REASON_PREEMPTED 0
#define REASON_SLEEPING 1
#define REASON_UNINTERRUPTIBLE 2
#define REASON_OTHER 3

struct off_cpu {
    u64 since_ns;
    u64 cgroup;
    u32 reason;
    u32 pad;
};

struct reason_key {
    u64 cgroup; /* 0 unless -DCGROUP=1 */
    u32 reason;
    u32 pad; /* zeroed so that equal keys hash equally */
};

BPF_HASH(off_since, u32, struct off_cpu, MAX_THREADS);
BPF_PERCPU_HASH(offcpu_duration_seconds, struct reason_key, struct lmp_hist, MAX_SERIES);

static __always_inline u32 reason_of(long state)
{
    u32 bits = state & TASK_STATE_BITS;
    if (bits == 0) /* still runnable: preempted, or yielded */
        return REASON_PREEMPTED;
    if (bits & (STATE_INTERRUPTIBLE | STATE_IDLE))
        return REASON_SLEEPING;
    if (bits & STATE_UNINTERRUPTIBLE)
        return REASON_UNINTERRUPTIBLE;
    return REASON_OTHER; /* T stopped, t traced, P parked */
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    /* prev is still current here, so the current-task helpers describe the thread going off. Its
     * cgroup is taken now: when it comes back as `next`, current is another thread. */
    u64 now = bpf_ktime_get_ns();
    u32 prev = args->prev_pid;
    if (prev != 0 && !(args->prev_state & STATE_DEAD) && !lmp_skip_tgid()) { /* pid 0: the idle task */
        struct off_cpu off = {.since_ns = now, .cgroup = lmp_cgroup_id(), .reason = reason_of(args->prev_state)};
        if (off_since.update(&prev, &off))
            LMP_OVERFLOW(off_since);
    }

    u32 next = args->next_pid;
    if (next == 0)
        return 0;
    struct off_cpu *off = off_since.lookup(&next);
    if (!off) /* went off before the exporter started, filtered out, or the map was full */
        return 0;
    u64 spent = now - off->since_ns;
    struct reason_key key = {.cgroup = off->cgroup, .reason = off->reason};
    off_since.delete(&next);

    struct lmp_hist zero = {};
    struct lmp_hist *hist = offcpu_duration_seconds.lookup_or_try_init(&key, &zero);
    if (hist)
        lmp_hist_observe(hist, spent);
    else
        LMP_OVERFLOW(offcpu_duration_seconds);
    return 0;
}
