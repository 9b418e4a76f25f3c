/* scenario uprobes (-DUPROBES=1): calls of user-space functions the user names (--uprobe libc:malloc),
 * so that the chain of events starts in the program's own code. Each probe i has its own pair of
 * handlers, uprobe_i (entry) and uretprobe_i (return), attached by user space; a call becomes one
 * event at its return, with its duration and return value. Recursion into the same function on one
 * thread keeps only the innermost entry time. */

#define MAX_UPROBES 8
#define MAX_CALLS 8192

struct call_key {
    u32 tid;
    u32 probe;
};

struct uprobe_event {
    struct head h;
    u64 entry;
    u64 arg0;   /* first argument at entry (malloc's size, fsync's fd) */
    s64 ret;
    u32 probe;
    u32 pad;
};

struct call {
    u64 entry;
    u64 arg0;
};

BPF_HASH(calls, struct call_key, struct call, MAX_CALLS);
BPF_PERCPU_ARRAY(uprobe_totals, struct total, MAX_UPROBES);

static __always_inline int user_call(struct pt_regs *ctx, u32 probe)
{
    if (!followed())
        return 0;
    struct call_key key = {.tid = bpf_get_current_pid_tgid(), .probe = probe};
    struct call c = {.entry = bpf_ktime_get_ns(), .arg0 = PT_REGS_PARM1(ctx)};
    if (calls.update(&key, &c))
        LMP_OVERFLOW(calls);
    return 0;
}

static __always_inline int user_return(struct pt_regs *ctx, u32 probe)
{
    struct thread *t = followed();
    if (!t)
        return 0;
    struct call_key key = {.tid = bpf_get_current_pid_tgid(), .probe = probe};
    struct call *c = calls.lookup(&key);
    if (!c)
        return 0;
    u64 now = bpf_ktime_get_ns();
    struct total *total = uprobe_totals.lookup(&probe);
    if (total) {
        total->ns += now - c->entry;
        total->count++;
    }
    struct uprobe_event *e = reserve(EV_UPROBE, sizeof(*e), now, key.tid, t->tgid);
    if (e) {
        e->entry = c->entry;
        e->arg0 = c->arg0;
        e->ret = PT_REGS_RC(ctx);
        e->probe = probe;
        e->pad = 0;
        submit(e);
    }
    calls.delete(&key);
    return 0;
}

/* One entry and one return handler per probe slot; the slot says which probe fired. */
#define PROBE_SLOT(i) \
    int uprobe_##i(struct pt_regs *ctx) { return user_call(ctx, i); } \
    int uretprobe_##i(struct pt_regs *ctx) { return user_return(ctx, i); }
PROBE_SLOT(0)
PROBE_SLOT(1)
PROBE_SLOT(2)
PROBE_SLOT(3)
PROBE_SLOT(4)
PROBE_SLOT(5)
PROBE_SLOT(6)
PROBE_SLOT(7)
