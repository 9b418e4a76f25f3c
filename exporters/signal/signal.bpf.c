/* signal: signals sent, by signal and what became of them, and signals delivered, by signal and the
 * action the receiver had for them (default, ignore, or a handler of its own).
 *
 * signal_generate fires when a signal is sent (kill, tgkill, a fault, a child's exit, a timer), in the
 * context of whoever sent it, with `result`: queued for delivery, ignored, already pending, or dropped.
 * signal_deliver fires in the receiving thread when get_signal() takes the signal off its queue, just
 * before the action runs. Both are tp_btf programs reading the tracepoints' own arguments. */
#include "lmp.h"

/* (cgroup, signal, result) and (cgroup, signal, action) triples: 64 signals x 5 results per cgroup at
 * the very most; a host shows a few dozen. */
#define MAX_KEYS 4096

/* Options (the spec's), set by the exporter before the programs load. */
const volatile bool cgroup = false;

/* sa_handler values with a meaning of their own (include/uapi/asm-generic/signal-defs.h); anything else
 * is the address of the process's handler. */
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

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_KEYS);
    __type(key, struct generated_key);
    __type(value, u64);
} signals_generated_total SEC(".maps");
LMP_OVERFLOW_COUNTER(signals_generated_total);

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_KEYS);
    __type(key, struct delivered_key);
    __type(value, u64);
} signals_delivered_total SEC(".maps");
LMP_OVERFLOW_COUNTER(signals_delivered_total);

SEC("tp_btf/signal_generate")
int BPF_PROG(signal_generate, int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
             int result)
{
    struct generated_key key = {.cgroup = cgroup ? bpf_get_current_cgroup_id() : 0, .signal = sig,
                                .result = result};
    LMP_ADD(signals_generated_total, &key, 1);
    return 0;
}

SEC("tp_btf/signal_deliver")
int BPF_PROG(signal_deliver, int sig, struct kernel_siginfo *info, struct k_sigaction *ka)
{
    unsigned long handler = (unsigned long)ka->sa.sa_handler;
    struct delivered_key key = {
        .cgroup = cgroup ? bpf_get_current_cgroup_id() : 0,
        .signal = sig,
        .handler = handler == SIG_DFL_VALUE ? ACTION_DEFAULT : handler == SIG_IGN_VALUE ? ACTION_IGNORE : ACTION_HANDLER,
    };
    LMP_ADD(signals_delivered_total, &key, 1);
    return 0;
}
