/* irq: time spent in hard interrupt handlers, as a histogram per interrupt number.
 *
 * irq_handler_entry and irq_handler_exit wrap each handler (each `action` of an interrupt line) that
 * the kernel runs for a device interrupt. Handlers run with interrupts disabled, so they do not nest
 * on a CPU: one start slot per CPU (a per-CPU array with a single entry) is enough. Same method as
 * bcc's hardirqs -d, which uses these tracepoints too. */
#include "lmp.h"

/* Interrupt numbers seen at once: a host shows tens to a few hundred device interrupts. */
#define MAX_IRQS 1024

struct running {
    u64 since_ns; /* 0: nothing seen entering on this CPU */
    s32 irq;
    u32 pad;
};

BPF_PERCPU_ARRAY(irq_start, struct running, 1);
BPF_PERCPU_HASH(irq_handler_seconds, u32, struct lmp_hist, MAX_IRQS);

TRACEPOINT_PROBE(irq, irq_handler_entry)
{
    u32 zero = 0;
    struct running *r = irq_start.lookup(&zero);
    if (r) {
        r->since_ns = bpf_ktime_get_ns();
        r->irq = args->irq;
    }
    return 0;
}

TRACEPOINT_PROBE(irq, irq_handler_exit)
{
    u32 zero = 0;
    struct running *r = irq_start.lookup(&zero);
    /* No start: the exporter attached while this handler ran. Another irq: an entry event was lost. */
    if (!r || r->since_ns == 0 || r->irq != args->irq)
        return 0;
    u64 spent = bpf_ktime_get_ns() - r->since_ns;
    r->since_ns = 0;

    u32 irq = args->irq;
    struct lmp_hist empty = {};
    struct lmp_hist *hist = irq_handler_seconds.lookup_or_try_init(&irq, &empty);
    if (hist)
        lmp_hist_observe(hist, spent);
    else
        LMP_OVERFLOW(irq_handler_seconds);
    return 0;
}
