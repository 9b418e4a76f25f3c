/* runqlat: how long runnable threads wait in a CPU's run queue before they run.
 *
 * A thread joins a run queue when it is woken (sched_wakeup, sched_wakeup_new) or when it is switched
 * out while still runnable (preempted, or yielding). It leaves the queue when sched_switch picks it as
 * `next`. The wait in between is observed into a log2 histogram in nanoseconds. Same method as bcc's
 * runqlat, on tp_btf tracepoints: their arguments are the scheduler's own task_structs. */
#include "lmp.h"
#include "sched.h"

/* When each queued thread joined its run queue, kept in the thread's own task storage: no hash to
 * update and delete on this hot path, no capacity to run out of, and freed with the thread. */
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, u64);
} queued_at SEC(".maps");
LMP_OVERFLOW_COUNTER(queued_at); /* a slot the kernel could not allocate */

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct lmp_hist);
} runqueue_latency_seconds SEC(".maps");

static __always_inline void enqueue(struct task_struct *p)
{
    if (p->pid == 0) /* an idle task never waits */
        return;
    u64 *at = bpf_task_storage_get(&queued_at, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (at)
        *at = bpf_ktime_get_ns();
    else
        LMP_OVERFLOW(queued_at);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
    enqueue(p);
    return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
    enqueue(p);
    return 0;
}

/* prev_state is an argument since v5.18 (fa2c3254d7cf, "sched/tracing: Don't re-read p->state when
 * emitting sched_switch event"). */
SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
             unsigned int prev_state)
{
    /* Still runnable (preempted, or yielding): it waits in the queue from now. */
    if ((lmp_switch_state(preempt, prev_state, prev->exit_state) & ~TASK_REPORT_MAX) == 0)
        enqueue(prev);

    u64 *at = bpf_task_storage_get(&queued_at, next, 0, 0);
    if (!at || !*at) /* queued before the exporter started */
        return 0;
    u64 waited = bpf_ktime_get_ns() - *at;
    *at = 0;

    u32 zero = 0;
    struct lmp_hist *hist = bpf_map_lookup_elem(&runqueue_latency_seconds, &zero);
    if (hist)
        lmp_hist_observe(hist, waited);
    return 0;
}
