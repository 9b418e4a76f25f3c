/* scenario samples (-DSAMPLES=1): on-CPU stack samples. User space attaches on_cpu_sample to a
 * software cpu-clock perf event on every CPU at 99 Hz (not 100, so as not to run in step with timers);
 * each time it fires on a followed thread, its user and kernel stacks are taken. Samples in user mode
 * have no kernel stack. */
#include <uapi/linux/bpf_perf_event.h>

struct oncpu_key {
    u32 tgid;
    u32 tid;
    s32 kstack;
    s32 ustack;
};

struct sample_event {
    struct head h;
    u64 ip;
    s32 kstack;
    s32 ustack;
};

BPF_HASH(oncpu_stacks, struct oncpu_key, u64, MAX_STACK_KEYS); /* samples by stack */
BPF_PERCPU_ARRAY(sample_totals, u64, 2);                        /* user mode, kernel mode */

int on_cpu_sample(struct bpf_perf_event_data *ctx)
{
    struct thread *t = followed();
    if (!t)
        return 0;
    u64 ip = PT_REGS_IP(&ctx->regs);
    u32 mode = (s64)ip < 0; /* kernel addresses are in the upper half (x86_64, arm64) */
    u64 *n = sample_totals.lookup(&mode);
    if (n)
        (*n)++;
    struct oncpu_key key = {.tgid = t->tgid, .tid = bpf_get_current_pid_tgid(),
                            .kstack = mode ? stacks.get_stackid(ctx, 0) : -1,
                            .ustack = stacks.get_stackid(ctx, BPF_F_USER_STACK)};
    u64 zero = 0;
    u64 *count = oncpu_stacks.lookup_or_try_init(&key, &zero);
    if (count)
        (*count)++;
    else
        LMP_OVERFLOW(oncpu_stacks);
    struct sample_event *e = reserve(EV_SAMPLE, sizeof(*e), bpf_ktime_get_ns(), key.tid, t->tgid);
    if (e) {
        e->ip = ip;
        e->kstack = key.kstack;
        e->ustack = key.ustack;
        submit(e);
    }
    return 0;
}
