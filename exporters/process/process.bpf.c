/* process: how processes are born, replaced and die: forks (processes and threads), execs, exits by
 * exit code, deaths by fatal signal, and how long each process lived.
 *
 * sched_process_fork runs as a raw tracepoint because its formatted arguments (child_pid) do not say
 * whether the child is a thread; the raw one passes the child's task_struct, whose pid and tgid do.
 * sched_process_exit with group_dead set is the death of a whole process; its exit status and start
 * time are not in the tracepoint's arguments, so they are read from task_struct at offsets the
 * exporter takes from the kernel's BTF (-DBTF_task_struct_<field>=<byte offset>). */
#include "lmp.h"

/* Cgroups seen with the cgroup option; without it every key has cgroup 0 and the maps hold one entry
 * (or one per exit code / signal). */
#define MAX_CGROUPS 1024
/* (cgroup, exit code) and (cgroup, signal, core) pairs: most hosts show a handful of each. */
#define MAX_STATUSES 4096

/* Kinds of fork, in the order of the spec's `kind` label values. */
#define KIND_PROCESS 0
#define KIND_THREAD 1

/* The wait status in task_struct.exit_code (see wait(2), kernel/exit.c): exit(code) leaves code << 8;
 * a fatal signal leaves the signal number in the low 7 bits, with 0x80 set if it dumped core. */
#define STATUS_SIGNAL_MASK 0x7f
#define STATUS_CORE_DUMPED 0x80

struct fork_key {
    u64 cgroup;
    u32 kind;
    u32 pad; /* zeroed so that equal keys hash equally */
};

struct exit_key {
    u64 cgroup;
    u32 code;
    u32 pad;
};

struct signal_key {
    u64 cgroup;
    u32 signal;
    u32 core_dumped;
};

BPF_PERCPU_HASH(process_execs_total, u64, u64, MAX_CGROUPS);
BPF_PERCPU_HASH(process_forks_total, struct fork_key, u64, MAX_CGROUPS * 2);
BPF_PERCPU_HASH(process_exits_total, struct exit_key, u64, MAX_STATUSES);
BPF_PERCPU_HASH(process_fatal_signals_total, struct signal_key, u64, MAX_STATUSES);
BPF_PERCPU_HASH(process_lifetime_seconds, u64, struct lmp_hist, MAX_CGROUPS);

/* A field of a task_struct at its BTF offset; 0 if the read fails. */
#define TASK_FIELD(task, field, dst) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)(task) + BTF_task_struct_##field)

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    /* TP_PROTO(struct task_struct *parent, struct task_struct *child); runs in the parent. */
    void *child = (void *)ctx->args[1];
    pid_t pid = 0, tgid = 0;
    TASK_FIELD(child, pid, pid);
    TASK_FIELD(child, tgid, tgid);
    struct fork_key key = {.cgroup = lmp_cgroup_id(), .kind = pid == tgid ? KIND_PROCESS : KIND_THREAD};
    u64 zero = 0;
    u64 *n = process_forks_total.lookup_or_try_init(&key, &zero);
    if (n)
        (*n)++;
    else
        LMP_OVERFLOW(process_forks_total);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    /* Fires only for an exec that succeeded, in the task that now runs the new program. */
    u64 key = lmp_cgroup_id();
    u64 zero = 0;
    u64 *n = process_execs_total.lookup_or_try_init(&key, &zero);
    if (n)
        (*n)++;
    else
        LMP_OVERFLOW(process_execs_total);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    if (!args->group_dead) /* a thread ended; its process lives on */
        return 0;
    void *task = (void *)bpf_get_current_task();
    u64 cgroup = lmp_cgroup_id();
    u64 zero = 0;

    int status = 0;
    TASK_FIELD(task, exit_code, status);
    if ((status & STATUS_SIGNAL_MASK) == 0) {
        struct exit_key key = {.cgroup = cgroup, .code = (status >> 8) & 0xff};
        u64 *n = process_exits_total.lookup_or_try_init(&key, &zero);
        if (n)
            (*n)++;
        else
            LMP_OVERFLOW(process_exits_total);
    } else {
        struct signal_key key = {.cgroup = cgroup, .signal = status & STATUS_SIGNAL_MASK,
                                 .core_dumped = (status & STATUS_CORE_DUMPED) != 0};
        u64 *n = process_fatal_signals_total.lookup_or_try_init(&key, &zero);
        if (n)
            (*n)++;
        else
            LMP_OVERFLOW(process_fatal_signals_total);
    }

    /* The process began when its group leader was forked: start_time is ktime_get_ns() then, the
     * same monotonic clock as bpf_ktime_get_ns(). The last thread to exit need not be the leader. */
    void *leader = NULL;
    u64 started = 0;
    TASK_FIELD(task, group_leader, leader);
    if (!leader || TASK_FIELD(leader, start_time, started) || !started)
        return 0;
    struct lmp_hist empty = {};
    struct lmp_hist *hist = process_lifetime_seconds.lookup_or_try_init(&cgroup, &empty);
    if (hist) /* in microseconds, so that the buckets reach days */
        lmp_hist_observe(hist, (bpf_ktime_get_ns() - started) / 1000);
    else
        LMP_OVERFLOW(process_lifetime_seconds);
    return 0;
}
