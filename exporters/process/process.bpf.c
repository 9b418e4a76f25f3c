/* process: how processes are born, replaced and die: forks (processes and threads), execs, exits by
 * exit code, deaths by fatal signal, and how long each process lived.
 *
 * tp_btf programs: each tracepoint's arguments are the kernel's own task_structs, so the child of a fork
 * says whether it is a thread (pid != tgid), and the exiting task its wait status and its group leader's
 * start time; CO-RE finds those fields wherever the running kernel keeps them. */
#include "lmp.h"

/* Cgroups seen with the cgroup option; without it every key has cgroup 0 and the maps hold one entry
 * (or one per exit code / signal). */
#define MAX_CGROUPS 1024
/* (cgroup, exit code) and (cgroup, signal, core) pairs: most hosts show a handful of each. */
#define MAX_STATUSES 4096

/* Options (the spec's), set by the exporter before the programs load. */
const volatile bool cgroup = false;

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


LMP_COUNTERS(process_execs_total, u64, MAX_CGROUPS);
LMP_COUNTERS(process_forks_total, struct fork_key, MAX_CGROUPS * 2);
LMP_COUNTERS(process_exits_total, struct exit_key, MAX_STATUSES);
LMP_COUNTERS(process_fatal_signals_total, struct signal_key, MAX_STATUSES);

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_CGROUPS);
    __type(key, u64);
    __type(value, struct lmp_hist);
} process_lifetime_seconds SEC(".maps");
LMP_OVERFLOW_COUNTER(process_lifetime_seconds);

static __always_inline u64 cgroup_id(void)
{
    return cgroup ? bpf_get_current_cgroup_id() : 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
    /* Runs in the parent: its cgroup is where the child starts. */
    struct fork_key key = {.cgroup = cgroup_id(), .kind = child->pid == child->tgid ? KIND_PROCESS : KIND_THREAD};
    LMP_ADD(process_forks_total, &key, 1);
    return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    /* Fires only for an exec that succeeded, in the task that now runs the new program. */
    u64 key = cgroup_id();
    LMP_ADD(process_execs_total, &key, 1);
    return 0;
}

/* group_dead is an argument since v6.16 (the tracepoint's record carries it too). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task, bool group_dead)
{
    if (!group_dead) /* a thread ended; its process lives on */
        return 0;
    u64 id = cgroup_id();
    int status = task->exit_code;
    if ((status & STATUS_SIGNAL_MASK) == 0) {
        struct exit_key key = {.cgroup = id, .code = (status >> 8) & 0xff};
        LMP_ADD(process_exits_total, &key, 1);
    } else {
        struct signal_key key = {.cgroup = id, .signal = status & STATUS_SIGNAL_MASK,
                                 .core_dumped = (status & STATUS_CORE_DUMPED) != 0};
        LMP_ADD(process_fatal_signals_total, &key, 1);
    }

    /* The process began when its group leader was forked: start_time is ktime_get_ns() then, the same
     * monotonic clock as bpf_ktime_get_ns(). The last thread to exit need not be the leader. */
    u64 started = task->group_leader->start_time;
    if (started) /* in microseconds, so that the buckets reach days */
        LMP_OBSERVE(process_lifetime_seconds, &id, (bpf_ktime_get_ns() - started) / 1000);
    return 0;
}
