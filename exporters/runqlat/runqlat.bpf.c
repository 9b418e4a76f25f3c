/* runqlat: how long runnable threads wait in a CPU's run queue before they run.
 *
 * A thread joins a run queue when it is woken (sched_wakeup, sched_wakeup_new) or when it is switched
 * out while still runnable (preempted, or yielding). It leaves the queue when sched_switch picks it as
 * `next`. The wait in between is observed into a log2 histogram in nanoseconds. Same method as bcc's
 * runqlat, on tracepoints only. */
#include "lmp.h"

/* Threads queued at once across all CPUs. A plain hash, not an LRU one: an LRU update costs several
 * times more on this hot path (measured with `lmp bench`). Entries cannot leak for long: each is
 * deleted when its thread runs, and overwritten when the thread queues again. */
#define MAX_QUEUED 16384

/* prev_state's low byte holds the task-state bits (TASK_REPORT: S, D, T, t, X, Z, P, I); bit 0x100
 * (TASK_REPORT_MAX) marks a preemption. No state bit set means the thread is still runnable.
 * Format since v4.14 (commit efb40f588b43, "sched/tracing: Fix trace_sched_switch task-state"). */
#define TASK_STATE_BITS 0xff

BPF_HASH(queued_at, u32, u64, MAX_QUEUED);
BPF_PERCPU_ARRAY(runqueue_latency_seconds, struct lmp_hist, 1);

static __always_inline int enqueue(u32 tid)
{
    if (tid == 0) /* the idle task never waits */
        return 0;
    u64 now = bpf_ktime_get_ns();
    if (queued_at.update(&tid, &now))
        LMP_OVERFLOW(queued_at);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    return enqueue(args->pid);
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    return enqueue(args->pid);
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    if ((args->prev_state & TASK_STATE_BITS) == 0)
        enqueue(args->prev_pid);

    u32 next = args->next_pid;
    u64 *queued = queued_at.lookup(&next);
    if (!queued)
        return 0;
    u64 waited = bpf_ktime_get_ns() - *queued;
    queued_at.delete(&next);

    u32 zero = 0;
    struct lmp_hist *hist = runqueue_latency_seconds.lookup(&zero);
    if (hist)
        lmp_hist_observe(hist, waited);
    return 0;
}
