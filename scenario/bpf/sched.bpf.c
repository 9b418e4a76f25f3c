/* scenario sched: the per-thread time accounting of core.bpf.c, driven by the scheduler's tracepoints,
 * and the process events. Always compiled: the breakdown needs it. Off-CPU intervals become events only
 * with -DOFFCPU=1. */

static __always_inline u32 blocked_reason(long state)
{
    u32 bits = state & TASK_STATE_BITS;
    if (bits & (STATE_INTERRUPTIBLE | STATE_IDLE))
        return ST_SLEEPING;
    if (bits & STATE_UNINTERRUPTIBLE)
        return ST_UNINTERRUPTIBLE;
    return ST_OTHER;
}

/* The thread going off the CPU is `current` here (prev): its stacks are the ones at the switch. */
static __always_inline void switch_out(void *ctx, u32 tid, long prev_state, u64 now)
{
    struct thread *t = threads.lookup(&tid);
    if (!t)
        return;
    /* Whatever state it was in ends now (ON_CPU unless an event was missed), so that a thread's states
     * always add up to its lifetime. */
    account(t->state == ST_UNKNOWN ? ST_ON_CPU : t->state, now - t->since);
    if (prev_state & STATE_DEAD) { /* its last switch: the thread is gone */
        account(T_LIFETIME, now - t->born);
        u32 last = T_LAST_END;
        struct total *end = totals.lookup(&last);
        if (end) {
            end->ns = now;
            end->count++;
        }
        threads.delete(&tid);
        release_slot(tid);
        return;
    }
    t->reason = (prev_state & TASK_STATE_BITS) ? blocked_reason(prev_state) : ST_PREEMPTED;
    t->state = t->reason;
    t->since = now;
    t->off_at = now;
    t->woken_at = 0;
    t->kstack = stacks.get_stackid(ctx, 0);
    t->ustack = stacks.get_stackid(ctx, BPF_F_USER_STACK);
}

static __always_inline void switch_in(u32 tid, u64 now)
{
    struct thread *t = threads.lookup(&tid);
    if (!t)
        return;
    u32 state = t->state;
    if (state == ST_ON_CPU)
        return;
    /* WOKEN threads waited in the run queue since the wake-up; PREEMPTED and UNKNOWN ones since the
     * switch out (or since following began); a BLOCKED one whose wake-up was not seen, blocked until now. */
    account(state == ST_UNKNOWN ? ST_PREEMPTED : state, now - t->since);
    if (t->off_at) {
        struct offcpu_key key = {.tgid = t->tgid, .reason = t->reason, .kstack = t->kstack, .ustack = t->ustack};
        u64 zero = 0;
        u64 *ns = offcpu_stacks.lookup_or_try_init(&key, &zero);
        if (ns)
            *ns += now - t->off_at;
        else
            LMP_OVERFLOW(offcpu_stacks);
#if OFFCPU
        struct offcpu_event *e = reserve(EV_OFFCPU, sizeof(*e), now, tid, t->tgid);
        if (e) {
            e->off_at = t->off_at;
            e->woken_at = t->woken_at;
            e->reason = t->reason;
            e->waker = t->waker;
            e->kstack = t->kstack;
            e->ustack = t->ustack;
            submit(e);
        }
#endif
    }
    t->state = ST_ON_CPU;
    t->since = now;
    t->off_at = 0;
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    switch_out(args, args->prev_pid, args->prev_state, now);
    switch_in(args->next_pid, now);
    return 0;
}

static __always_inline void woken(u32 tid)
{
    struct thread *t = threads.lookup(&tid);
    if (!t || !(t->state == ST_SLEEPING || t->state == ST_UNINTERRUPTIBLE || t->state == ST_OTHER ||
                t->state == ST_UNKNOWN))
        return; /* running, or already runnable: a wake-up that changes nothing */
    u64 now = bpf_ktime_get_ns();
    account(t->reason, now - t->since);
    t->state = ST_RUNQUEUE;
    t->since = now;
    t->woken_at = now;
    t->waker = bpf_get_current_pid_tgid();
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    woken(args->pid);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    woken(args->pid);
    return 0;
}

/* Raw, because the formatted tracepoint does not say whether the child is a thread: its task_struct
 * does (pid == tgid for a new process). Runs in the parent. */
RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    struct thread *parent = followed();
    if (!parent)
        return 0;
    void *child = (void *)ctx->args[1];
    u32 pid = 0, tgid = 0;
    FIELD(child, task_struct, pid, pid);
    FIELD(child, task_struct, tgid, tgid);
    if (tgid != parent->tgid && !FOLLOW_CHILDREN)
        return 0;
    u64 now = bpf_ktime_get_ns();
    /* Born blocked (state OTHER) until wake_up_new_task() makes it runnable. */
    struct thread t = {.since = now, .born = now, .tgid = tgid, .state = ST_OTHER, .reason = ST_OTHER,
                       .kstack = -1, .ustack = -1};
    if (threads.update(&pid, &t))
        LMP_OVERFLOW(threads);
    else
        claim_slot(pid);
    struct proc_event *e = reserve(EV_FORK, sizeof(struct head) + 8, now, bpf_get_current_pid_tgid(),
                                   parent->tgid);
    if (e) {
        e->pid = pid;
        e->tgid = tgid;
        submit(e);
    }
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    struct thread *t = followed();
    if (!t)
        return 0;
    struct proc_event *e = reserve(EV_EXEC, sizeof(*e), bpf_ktime_get_ns(), bpf_get_current_pid_tgid(), t->tgid);
    if (e) {
        e->pid = args->pid;
        e->tgid = args->old_pid;
        TP_DATA_LOC_READ_STR(e->name, filename, sizeof(e->name));
        submit(e);
    }
    return 0;
}

/* Runs in the exiting thread, before its last switch; the exit status is in task_struct.exit_code. */
TRACEPOINT_PROBE(sched, sched_process_exit)
{
    struct thread *t = followed();
    if (!t)
        return 0;
    struct proc_event *e = reserve(EV_EXIT, sizeof(struct head) + 8, bpf_ktime_get_ns(), args->pid, t->tgid);
    if (e) {
        int status = 0;
        FIELD(bpf_get_current_task(), task_struct, exit_code, status);
        e->pid = status;
        e->tgid = args->group_dead;
        submit(e);
    }
    return 0;
}
