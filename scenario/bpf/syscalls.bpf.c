/* scenario syscalls (-DSYSCALLS=1): every system call of the followed threads, with its entry and exit
 * time, return value and first three arguments; the path for open, openat and openat2.
 *
 * Raw tracepoints, because this is the hottest path: the formatted raw_syscalls tracepoints first copy
 * their arguments into a perf buffer record, the raw ones hand over the registers as they are. The
 * arguments are read from pt_regs at the exit (the kernel leaves them in place; only ax changes) at
 * offsets from the running kernel's BTF. The totals per syscall are exact; the events may be lost when
 * the ring buffer is full. */

#define SYS_NR_OPEN 2 /* x86_64 numbers, as syscalls.bpf.c of the exporters names them */
#define SYS_NR_OPENAT 257
#define SYS_NR_OPENAT2 437
/* The syscall the kernel's uretprobe trampoline makes on x86_64 (added in v6.11): the
 * recorder's own --uprobe at work, not the program's, so it is left out. */
#define SYS_NR_URETPROBE 335
#define PATH_LEN 256

struct syscall_event {
    struct head h;
    u64 enter;
    s64 ret;
    u64 args[3];
    u32 nr;
    u32 pad;
};

struct path_event {
    struct syscall_event s;
    char path[PATH_LEN];
};

BPF_PERCPU_ARRAY(syscall_totals, struct syscall_total, MAX_SYSCALLS);

static __always_inline void fill_syscall(struct syscall_event *e, void *regs, u64 enter, s64 ret, u32 nr)
{
    e->enter = enter;
    e->ret = ret;
    e->nr = nr;
    e->pad = 0;
#if BTF_pt_regs_si == BTF_pt_regs_dx + 8 && BTF_pt_regs_di == BTF_pt_regs_dx + 16
    /* x86_64 keeps dx, si, di side by side (in that order): one read instead of three. */
    u64 dx_si_di[3] = {};
    bpf_probe_read_kernel(dx_si_di, sizeof(dx_si_di), regs + BTF_pt_regs_dx);
    e->args[0] = dx_si_di[2];
    e->args[1] = dx_si_di[1];
    e->args[2] = dx_si_di[0];
#else
    FIELD(regs, pt_regs, di, e->args[0]);
    FIELD(regs, pt_regs, si, e->args[1]);
    FIELD(regs, pt_regs, dx, e->args[2]);
#endif
}

RAW_TRACEPOINT_PROBE(sys_enter)
{
    u32 tid = bpf_get_current_pid_tgid(), i = tid & (SYS_SLOTS - 1), nr = ctx->args[1];
    struct sys_slot *s = sys_slots.lookup(&i);
    if (!s || nr == SYS_NR_URETPROBE)
        return 0;
    if (s->tid == tid) { /* the fast path: a followed thread that owns its slot */
        s->enter = bpf_ktime_get_ns();
        s->nr = nr;
        return 0;
    }
    struct thread *t = threads.lookup(&tid); /* another's slot: followed, or (most often) not */
    if (t) {
        t->sys_enter = bpf_ktime_get_ns();
        t->sys_nr = nr;
    }
    return 0;
}

/* The syscall in progress of the current thread, which it leaves: its entry time (0 if none was seen,
 * or the thread is not followed) and number. */
static __always_inline u64 leave(u32 tid, u32 *nr)
{
    u32 i = tid & (SYS_SLOTS - 1);
    struct sys_slot *s = sys_slots.lookup(&i);
    u64 enter = 0;
    if (s && s->tid == tid) {
        enter = s->enter;
        *nr = s->nr;
        s->enter = 0;
        return enter;
    }
    struct thread *t = threads.lookup(&tid);
    if (t) {
        enter = t->sys_enter;
        *nr = t->sys_nr;
        t->sys_enter = 0;
    }
    return enter;
}

RAW_TRACEPOINT_PROBE(sys_exit)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = pid_tgid, tgid = pid_tgid >> 32, nr = 0;
    u64 enter = leave(tid, &nr);
    if (!enter) /* not followed, or entered before following began */
        return 0;
    u64 now = bpf_ktime_get_ns();
    s64 ret = ctx->args[1];
    struct syscall_total *total = syscall_totals.lookup(&nr);
    if (total) {
        total->count++;
        total->ns += now - enter;
        if (ret < 0 && ret > -4096) /* -errno */
            total->errors++;
    }

    void *regs = (void *)ctx->args[0];
    if (nr == SYS_NR_OPEN || nr == SYS_NR_OPENAT || nr == SYS_NR_OPENAT2) {
        struct path_event *p = reserve(EV_SYSCALL_PATH, sizeof(*p), now, tid, tgid);
        if (!p)
            return 0;
        fill_syscall(&p->s, regs, enter, ret, nr);
        p->path[0] = 0; /* stays empty if the pointer cannot be read */
        bpf_probe_read_user_str(p->path, sizeof(p->path), (void *)(nr == SYS_NR_OPEN ? p->s.args[0] : p->s.args[1]));
        submit(p);
        return 0;
    }
    struct syscall_event *e = reserve(EV_SYSCALL, sizeof(*e), now, tid, tgid);
    if (!e)
        return 0;
    fill_syscall(e, regs, enter, ret, nr);
    submit(e);
    return 0;
}
