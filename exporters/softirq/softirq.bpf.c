/* softirq: time spent running each softirq vector (NET_RX, TIMER, RCU, ...), as a histogram per vector.
 *
 * softirq_entry and softirq_exit both carry the vector number. Softirqs do not nest on a CPU (a softirq
 * runs with softirqs disabled, and an interrupt that arrives meanwhile leaves its softirqs for later), so
 * one start slot per CPU is enough: a per-CPU array with a single entry, no hash.
 * Raw tracepoints (tp_btf), not perf-event ones: the kernel skips a perf-event tracepoint program that
 * fires while another BPF program runs on the CPU, and softirqs often run right after one. Their
 * arguments are the tracepoint's C arguments: softirq_entry(unsigned int vec_nr), softirq_exit(same).
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

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct running);
} softirq_start SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, MAX_VECTORS);
    __type(key, u32);
    __type(value, struct lmp_hist);
} softirq_duration_seconds SEC(".maps");
LMP_OVERFLOW_COUNTER(softirq_duration_seconds);

SEC("tp_btf/softirq_entry")
int BPF_PROG(softirq_entry, unsigned int vec_nr)
{
    u32 zero = 0;
    struct running *r = bpf_map_lookup_elem(&softirq_start, &zero);
    if (r) {
        r->since_ns = bpf_ktime_get_ns();
        r->vec = vec_nr;
    }
    return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(softirq_exit, unsigned int vec_nr)
{
    u32 zero = 0;
    struct running *r = bpf_map_lookup_elem(&softirq_start, &zero);
    /* No start: the exporter attached while this softirq ran. */
    if (!r || r->since_ns == 0 || r->vec != vec_nr)
        return 0;
    u64 spent = bpf_ktime_get_ns() - r->since_ns;
    r->since_ns = 0;

    struct lmp_hist *hist = bpf_map_lookup_elem(&softirq_duration_seconds, &vec_nr);
    if (hist)
        lmp_hist_observe(hist, spent);
    else
        LMP_OVERFLOW(softirq_duration_seconds);
    return 0;
}
