/* scenario signals (-DSIGNALS=1): signals sent to or by the followed threads (signal_generate, in the
 * sender's context, names the target thread) and signals they handle (signal_deliver, in the
 * receiver's context, with the handler's address: 0 default action, 1 ignored). */

struct signal_event {
    struct head h;
    u64 handler;
    s32 sig;
    s32 code;
    s32 result;  /* generate: TRACE_SIGNAL_DELIVERED (0), IGNORED, ALREADY_PENDING, ... */
    u32 target;  /* generate: the target thread; deliver: the receiving thread */
    u32 sender;  /* generate: the sending thread; deliver: 0 */
    u32 deliver; /* 0 generate, 1 deliver */
};

BPF_PERCPU_ARRAY(signal_totals, u64, 2); /* generated, delivered */

static __always_inline void signal_event(u32 deliver, s32 sig, s32 code, s32 result, u32 target, u64 handler,
                                         u32 tgid)
{
    u64 *n = signal_totals.lookup(&deliver);
    if (n)
        (*n)++;
    u32 sender = deliver ? 0 : (u32)bpf_get_current_pid_tgid();
    struct signal_event *e = reserve(EV_SIGNAL, sizeof(*e), bpf_ktime_get_ns(), deliver ? target : sender, tgid);
    if (e) {
        e->handler = handler;
        e->sig = sig;
        e->code = code;
        e->result = result;
        e->target = target;
        e->sender = sender;
        e->deliver = deliver;
        submit(e);
    }
}

TRACEPOINT_PROBE(signal, signal_generate)
{
    u32 target = args->pid, tgid = 0;
    struct thread *from = followed();
    if (from) {
        tgid = from->tgid;
    } else {
        struct thread *to = threads.lookup(&target);
        if (!to)
            return 0;
        tgid = to->tgid;
    }
    signal_event(0, args->sig, args->code, args->result, target, 0, tgid);
    return 0;
}

TRACEPOINT_PROBE(signal, signal_deliver)
{
    struct thread *t = followed();
    if (t)
        signal_event(1, args->sig, args->code, 0, (u32)bpf_get_current_pid_tgid(), args->sa_handler, t->tgid);
    return 0;
}
