/* irq: time spent in hard interrupt handlers, as a histogram per interrupt number.
 *
 * irq_handler_entry and irq_handler_exit wrap each handler (each `action` of an interrupt line) that the
 * kernel runs for a device interrupt. The start time is kept per CPU and per interrupt number: handlers
 * run with interrupts disabled, but a demultiplexing handler (GPIO, some MFD drivers) runs its child
 * interrupts' handlers inside its own, so one slot per CPU would mix them up.
 * Raw tracepoints (tp_btf), not perf-event ones: the kernel skips a perf-event tracepoint program that
 * fires while another BPF program runs on the CPU, and interrupts arrive exactly then. Their arguments
 * are the tracepoint's C arguments: irq_handler_entry(int irq, struct irqaction *action) and
 * irq_handler_exit(int irq, struct irqaction *action, int ret). Same interval as bcc's hardirqs -d. */
#include "lmp.h"

/* Interrupt numbers: a start slot for each below this (NR_IRQS on x86_64 with 2 CPUs is 4352 at most
 * with MSI; larger numbers are counted as overflow). */
#define MAX_IRQ_NUMBER 4096
/* Interrupt numbers seen: a host shows tens to a few hundred device interrupts. */
#define MAX_IRQS 1024

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, MAX_IRQ_NUMBER);
    __type(key, u32);
    __type(value, u64);
} irq_start SEC(".maps");
LMP_OVERFLOW_COUNTER(irq_start);

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_IRQS);
    __type(key, u32);
    __type(value, struct lmp_hist);
} irq_handler_duration_seconds SEC(".maps");
LMP_OVERFLOW_COUNTER(irq_handler_duration_seconds);

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(irq_handler_entry, int irq, struct irqaction *action)
{
    u32 key = irq;
    u64 *start = bpf_map_lookup_elem(&irq_start, &key);
    if (start)
        *start = bpf_ktime_get_ns();
    else
        LMP_OVERFLOW(irq_start);
    return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(irq_handler_exit, int irq, struct irqaction *action, int ret)
{
    u32 key = irq;
    u64 *start = bpf_map_lookup_elem(&irq_start, &key);
    if (!start || *start == 0) /* the exporter attached while this handler ran */
        return 0;
    u64 spent = bpf_ktime_get_ns() - *start;
    *start = 0;
    LMP_OBSERVE(irq_handler_duration_seconds, &key, spent);
    return 0;
}
