/* softirq: time spent running each softirq vector (NET_RX, TIMER, RCU, ...), as a histogram per vector.
 *
 * softirq_entry and softirq_exit both carry the vector number. Softirqs do not nest on a CPU (a
 * softirq runs with softirqs disabled, and an interrupt that arrives meanwhile leaves its softirqs for
 * later), so one start slot per CPU is enough: a per-CPU array with a single entry, no hash.
 * Raw tracepoints, not perf-event ones: the kernel skips a perf-event tracepoint program that fires
 * while another BPF program runs on the CPU, and softirqs often run right after one. Their argument is
 * the tracepoint's C argument: softirq_entry(unsigned int vec_nr), softirq_exit(unsigned int vec_nr).
 * Same interval as bcc's softirqs -d. */
#include "lmp.h"

/* Softirq vectors: HI, TIMER, NET_TX, NET_RX, BLOCK, IRQ_POLL, TASKLET, SCHED, HRTIMER, RCU (NR_SOFTIRQS
 * is 10 since v4.x); 16 leaves room. A vector past the array is counted as an overflow. */
#define MAX_VECTORS 16

struct running {
    u64 since_ns; /* 0: nothing seen entering on this CPU */
    u32 vec;
    u32 pad;
};

BPF_PERCPU_ARRAY(softirq_start, struct running, 1);
BPF_PERCPU_ARRAY(softirq_duration_seconds, struct lmp_hist, MAX_VECTORS);

RAW_TRACEPOINT_PROBE(softirq_entry)
{
    u32 zero = 0;
    struct running *r = softirq_start.lookup(&zero);
    if (r) {
        r->since_ns = bpf_ktime_get_ns();
        r->vec = ctx->args[0];
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(softirq_exit)
{
    u32 zero = 0;
    u32 vec = ctx->args[0];
    struct running *r = softirq_start.lookup(&zero);
    /* No start: the exporter attached while this softirq ran. */
    if (!r || r->since_ns == 0 || r->vec != vec)
        return 0;
    u64 spent = bpf_ktime_get_ns() - r->since_ns;
    r->since_ns = 0;

    struct lmp_hist *hist = softirq_duration_seconds.lookup(&vec);
    if (hist)
        lmp_hist_observe(hist, spent);
    else
        LMP_OVERFLOW(softirq_duration_seconds);
    return 0;
}
