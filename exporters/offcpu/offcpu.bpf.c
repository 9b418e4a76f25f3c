/* offcpu: how long threads spend off the CPU, and why they left it: preempted, sleeping, waiting
 * uninterruptibly (disk I/O, kernel locks), or stopped.
 *
 * sched_switch runs while `current` is still the thread going off the CPU (prev): its switch-out time,
 * reason and cgroup go into its task storage. When a later sched_switch picks that thread as `next`, the
 * time off the CPU is observed into a log2 histogram keyed by (reason, cgroup). bcc's offcputime measures
 * the same interval with a kprobe on finish_task_switch; this uses only the tracepoint (tp_btf). */
#include "lmp.h"
#include "sched.h"

/* (reason, cgroup) pairs: 4 reasons for each cgroup seen. */
#define MAX_SERIES 4096

/* Options (the spec's), set by the exporter before the programs load. */
const volatile u32 filter_tgid = 0;
const volatile bool cgroup = false;

/* Reasons, in the order of the spec's `reason` label values. */
#define REASON_PREEMPTED 0
#define REASON_SLEEPING 1
#define REASON_UNINTERRUPTIBLE 2
#define REASON_OTHER 3

struct off_cpu {
    u64 since_ns; /* 0: on a CPU, or not seen leaving one */
    u64 cgroup;
    u32 reason;
    u32 pad;
};

struct reason_key {
    u64 cgroup; /* 0 unless the cgroup option is on */
    u32 reason;
    u32 pad; /* zeroed so that equal keys hash equally */
};

/* Each thread's last switch out, in its own task storage: no hash on the hottest path, nothing to delete,
 * no capacity to run out of with many sleeping threads, and freed with the thread. */
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct off_cpu);
} off_since SEC(".maps");
LMP_OVERFLOW_COUNTER(off_since); /* a slot the kernel could not allocate */

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_SERIES);
    __type(key, struct reason_key);
    __type(value, struct lmp_hist);
} offcpu_duration_seconds SEC(".maps");
LMP_OVERFLOW_COUNTER(offcpu_duration_seconds);

static __always_inline u32 reason_of(u32 state)
{
    if (state == 0 || state == TASK_REPORT_MAX) /* still runnable: preempted, or yielded */
        return REASON_PREEMPTED;
    if (state & (TASK_INTERRUPTIBLE | TASK_REPORT_IDLE))
        return REASON_SLEEPING;
    if (state & TASK_UNINTERRUPTIBLE)
        return REASON_UNINTERRUPTIBLE;
    return REASON_OTHER; /* T stopped, t traced, P parked */
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
             unsigned int prev_state)
{
    /* prev is still current here, so the current-task helpers describe the thread going off. Its cgroup
     * is taken now: when it comes back as `next`, current is another thread. */
    u64 now = bpf_ktime_get_ns();
    u32 state = lmp_switch_state(preempt, prev_state, prev->exit_state);
    bool dead = state & TASK_REPORT_DEAD; /* it never comes back */
    if (prev->pid != 0 && !dead && (!filter_tgid || prev->tgid == filter_tgid)) { /* pid 0: an idle task */
        struct off_cpu *off = bpf_task_storage_get(&off_since, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
        if (off) {
            off->since_ns = now;
            off->cgroup = cgroup ? bpf_get_current_cgroup_id() : 0;
            off->reason = reason_of(state);
        } else {
            LMP_OVERFLOW(off_since);
        }
    }

    struct off_cpu *off = bpf_task_storage_get(&off_since, next, 0, 0);
    if (!off || !off->since_ns) /* went off before the exporter started, or filtered out */
        return 0;
    struct reason_key key = {.cgroup = off->cgroup, .reason = off->reason};
    u64 spent = now - off->since_ns;
    off->since_ns = 0;
    LMP_OBSERVE(offcpu_duration_seconds, &key, spent);
    return 0;
}
