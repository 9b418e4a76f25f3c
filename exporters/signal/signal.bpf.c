/* signal: signals sent, by signal and what became of them, and signals delivered, by signal and the
 * action the receiver had for them (default, ignore, or a handler of its own).
 *
 * signal_generate fires when a signal is sent (kill, tgkill, a fault, a child's exit, a timer), in the
 * context of whoever sent it, with `result`: queued for delivery, ignored, already pending, or dropped.
 * signal_deliver fires in the receiving thread when get_signal() takes the signal off its queue, just
 * before the action runs. Both carry everything counted here as tracepoint arguments. */
#include "lmp.h"

/* (cgroup, signal, result) and (cgroup, signal, action) triples: 64 signals x 5 results per cgroup at
 * the very most; a host shows a few dozen. */
#define MAX_KEYS 4096

/* sa_handler values with a meaning of their own (include/uapi/asm-generic/signal-defs.h); anything
 * else is the address of the process's handler. */
#define SIG_DFL_VALUE 0
#define SIG_IGN_VALUE 1

/* Actions, in the order of the spec's `handler` label values. */
#define ACTION_DEFAULT 0
#define ACTION_IGNORE 1
#define ACTION_HANDLER 2

struct generated_key {
    u64 cgroup;
    u32 signal;
    u32 result; /* enum TRACE_SIGNAL_* in include/trace/events/signal.h, in the spec's order */
};

struct delivered_key {
    u64 cgroup;
    u32 signal;
    u32 handler;
};

BPF_PERCPU_HASH(signals_generated_total, struct generated_key, u64, MAX_KEYS);
BPF_PERCPU_HASH(signals_delivered_total, struct delivered_key, u64, MAX_KEYS);

TRACEPOINT_PROBE(signal, signal_generate)
{
    struct generated_key key = {.cgroup = lmp_cgroup_id(), .signal = args->sig, .result = args->result};
    u64 zero = 0;
    u64 *n = signals_generated_total.lookup_or_try_init(&key, &zero);
    if (n)
        (*n)++;
    else
        LMP_OVERFLOW(signals_generated_total);
    return 0;
}

TRACEPOINT_PROBE(signal, signal_deliver)
{
    unsigned long handler = args->sa_handler;
    struct delivered_key key = {
        .cgroup = lmp_cgroup_id(),
        .signal = args->sig,
        .handler = handler == SIG_DFL_VALUE ? ACTION_DEFAULT : handler == SIG_IGN_VALUE ? ACTION_IGNORE : ACTION_HANDLER,
    };
    u64 zero = 0;
    u64 *n = signals_delivered_total.lookup_or_try_init(&key, &zero);
    if (n)
        (*n)++;
    else
        LMP_OVERFLOW(signals_delivered_total);
    return 0;
}
