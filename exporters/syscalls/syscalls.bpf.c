/* syscalls: counts every system call and every failed one, by syscall number and errno (and, with the
 * cgroup option, by the caller's cgroup).
 *
 * One program on the sys_exit tracepoint sees both the syscall number and its return value, so counting
 * calls and errors costs a single run per syscall. It is a tp_btf program: the tracepoint's own C
 * arguments, sys_exit(struct pt_regs *regs, long ret), read directly, without the copy of a classic
 * tracepoint's record (about 55 ns less per syscall here; see docs/performance.md). Counts go into
 * per-CPU arrays: no locking, no hashing on the hot path. A cgroup cannot index an array, so the cgroup
 * option counts calls in a per-CPU hash by (cgroup, syscall) instead, and the spec has the exporter read
 * that map (its `maps:`); the option is a constant, so the verifier drops whichever path is off. */
#include "lmp.h"

/* Syscall numbers index the arrays: x86_64 has about 470, so 1024 leaves room for new ones. */
#define MAX_SYSCALLS 1024
/* Distinct (syscall, errno) pairs, per cgroup with the cgroup option: a busy host shows a few hundred. */
#define MAX_ERROR_PAIRS 8192
/* (cgroup, syscall) pairs: a process makes 30 to 80 distinct syscalls, so room for a few hundred cgroups. */
#define MAX_CGROUP_KEYS 16384

/* Options (the spec's), set by the exporter before the programs load. */
const volatile bool latency = false;
const volatile u32 filter_tgid = 0;
const volatile bool cgroup = false;

struct error_key {
    u64 cgroup; /* 0 unless the cgroup option is on */
    u32 syscall;
    u32 errno;
};

struct cgroup_key {
    u64 cgroup;
    u32 syscall;
    u32 pad; /* zeroed so that equal keys hash equally */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, MAX_SYSCALLS);
    __type(key, u32);
    __type(value, u64);
} syscalls_total SEC(".maps");
LMP_OVERFLOW_COUNTER(syscalls_total);

/* What syscalls_total counts, with the cgroup option: the exporter reads this map instead. */
LMP_COUNTERS(syscalls_total_by_cgroup, struct cgroup_key, MAX_CGROUP_KEYS);

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_ERROR_PAIRS);
    __type(key, struct error_key);
    __type(value, u64);
} syscall_errors_total SEC(".maps");
LMP_OVERFLOW_COUNTER(syscall_errors_total);

/* The latency option: each thread's entry time in its own task storage (a slot the kernel keeps with
 * the thread and frees with it), where a hash keyed by thread would cost an update and a delete per call. */
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, u64);
} syscall_start SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, MAX_SYSCALLS);
    __type(key, u32);
    __type(value, struct lmp_hist);
} syscall_latency_seconds SEC(".maps");

static __always_inline bool skipped(void)
{
    return filter_tgid && (bpf_get_current_pid_tgid() >> 32) != filter_tgid;
}

/* Loaded only with the latency option (the spec's `programs:`). */
SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
    if (skipped())
        return 0;
    u64 *start = bpf_task_storage_get(&syscall_start, bpf_get_current_task_btf(), 0,
                                      BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (start)
        *start = bpf_ktime_get_ns();
    return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
    if (skipped())
        return 0;
    /* The number the tracepoint reports, syscall_get_nr(): x86's orig_ax. It is -1 at the exit of
     * rt_sigreturn (restore_sigcontext() sets it so that the return to user space restarts nothing) and
     * of a syscall seccomp or a tracer skipped: no call we can name, and no overflow. */
    long id = regs->orig_ax;
    if (id < 0)
        return 0;
    u32 nr = id;
    /* The cgroup v2 id, as the other collectors take it; a constant 0 without the option. */
    u64 cg = cgroup ? bpf_get_current_cgroup_id() : 0;
    if (cgroup) {
        struct cgroup_key key = {.cgroup = cg, .syscall = nr};
        LMP_ADD(syscalls_total_by_cgroup, &key, 1);
    } else {
        u64 *calls = bpf_map_lookup_elem(&syscalls_total, &nr);
        if (calls)
            (*calls)++;
        else /* a number past the array: x32 syscalls (bit 30 set) or a kernel far newer than this code */
            LMP_OVERFLOW(syscalls_total);
    }

    /* The kernel returns errors as -errno, in [-4095, -1]. */
    if (ret < 0 && ret >= -4095) {
        struct error_key key = {.cgroup = cg, .syscall = nr, .errno = -ret};
        LMP_ADD(syscall_errors_total, &key, 1);
    }

    if (latency) {
        u64 *start = bpf_task_storage_get(&syscall_start, bpf_get_current_task_btf(), 0, 0);
        if (start && *start) {
            struct lmp_hist *hist = bpf_map_lookup_elem(&syscall_latency_seconds, &nr);
            if (hist)
                lmp_hist_observe(hist, bpf_ktime_get_ns() - *start);
            *start = 0; /* exit() and exit_group() never get here; their slot goes with the thread */
        }
    }
    return 0;
}

