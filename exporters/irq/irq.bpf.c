/* irq: time spent in hard interrupt handlers, as a histogram per interrupt number.
 *
 * irq_handler_entry and irq_handler_exit wrap each handler (each `action` of an interrupt line) that
 * the kernel runs for a device interrupt. The start time is kept per CPU and per interrupt number:
 * handlers run with interrupts disabled, but a demultiplexing handler (GPIO, some MFD drivers) runs its
 * child interrupts' handlers inside its own, so one slot per CPU would mix them up.
 * Raw tracepoints, not perf-event ones: the kernel skips a perf-event tracepoint program that fires
 * while another BPF program runs on the CPU, and interrupts arrive exactly then. Their arguments are
 * the tracepoint's C arguments: irq_handler_entry(int irq, struct irqaction *action) and
 * irq_handler_exit(int irq, struct irqaction *action, int ret). Same interval as bcc's hardirqs -d. */
#include "lmp.h"

/* Interrupt numbers: a start slot for each below this (NR_IRQS on x86_64 with 2 CPUs is 4352 at most
 * with MSI; larger numbers are counted as overflow). */
#define MAX_IRQ_NUMBER 4096
/* Interrupt numbers seen: a host shows tens to a few hundred device interrupts. */
#define MAX_IRQS 1024

BPF_PERCPU_ARRAY(irq_start, u64, MAX_IRQ_NUMBER);
BPF_PERCPU_HASH(irq_handler_duration_seconds, u32, struct lmp_hist, MAX_IRQS);

RAW_TRACEPOINT_PROBE(irq_handler_entry)
{
    u32 irq = ctx->args[0];
    u64 *start = irq_start.lookup(&irq);
    if (start)
        *start = bpf_ktime_get_ns();
    else
        LMP_OVERFLOW(irq_start);
    return 0;
}

RAW_TRACEPOINT_PROBE(irq_handler_exit)
{
    u32 irq = ctx->args[0];
    u64 *start = irq_start.lookup(&irq);
    if (!start || *start == 0) /* the exporter attached while this handler ran */
        return 0;
    u64 spent = bpf_ktime_get_ns() - *start;
    *start = 0;

    struct lmp_hist empty = {};
    struct lmp_hist *hist = irq_handler_duration_seconds.lookup_or_try_init(&irq, &empty);
    if (hist)
        lmp_hist_observe(hist, spent);
    else
        LMP_OVERFLOW(irq_handler_duration_seconds);
    return 0;
}
