/* syscalls: counts every system call and every failed one, by syscall number and errno.
 *
 * One probe on raw_syscalls:sys_exit sees both the syscall number (args->id) and its return value
 * (args->ret), so counting calls and errors costs a single program run per syscall. Counts go into
 * per-CPU arrays: no locking, no hashing on the hot path. */
#include "lmp.h"
#include <asm/unistd.h> /* __NR_exit, __NR_exit_group */

/* Syscall numbers index the arrays: x86_64 has about 470, so 1024 leaves room for new ones. */
#define MAX_SYSCALLS 1024
/* Distinct (syscall, errno) pairs: a busy host shows a few hundred. */
#define MAX_ERROR_PAIRS 4096
/* Threads inside a syscall at once, for the optional latency histogram. */
#define MAX_THREADS 16384

struct error_key {
    u32 syscall;
    u32 errno;
};

BPF_PERCPU_ARRAY(syscalls_total, u64, MAX_SYSCALLS);
BPF_PERCPU_HASH(syscall_errors_total, struct error_key, u64, MAX_ERROR_PAIRS);

#if LATENCY
/* Optional (-DLATENCY=1): timing each call needs a second probe and a hash keyed by thread, which
 * costs several times more than the counters (see README, Overhead). */
BPF_HASH(syscall_start, u32, u64, MAX_THREADS);
BPF_PERCPU_ARRAY(syscall_latency_seconds, struct lmp_hist, MAX_SYSCALLS);

TRACEPOINT_PROBE(raw_syscalls, sys_enter)
{
    if (lmp_skip_tgid())
        return 0;
    /* exit() and exit_group() never return: their entry would never be deleted. Syscall numbers are
     * ABI, so the installed headers' __NR_ values are right even when the headers are older. */
    if (args->id == __NR_exit || args->id == __NR_exit_group)
        return 0;
    u32 tid = bpf_get_current_pid_tgid();
    u64 now = bpf_ktime_get_ns();
    if (syscall_start.update(&tid, &now))
        LMP_OVERFLOW(syscall_start);
    return 0;
}
#endif

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    if (lmp_skip_tgid())
        return 0;
    /* The kernel reports id -1 at the exit of rt_sigreturn (restore_sigcontext() sets orig_ax to -1, so
     * that the return to user space restarts nothing) and of a syscall seccomp or a tracer skipped: no
     * call we can name, and no overflow. A signal handler's return is the common case. */
    if (args->id < 0) {
#if LATENCY
        u32 tid = bpf_get_current_pid_tgid();
        syscall_start.delete(&tid);
#endif
        return 0;
    }
    u32 nr = args->id;
    u64 *calls = syscalls_total.lookup(&nr);
    if (calls)
        (*calls)++;
    else /* a number past the array: x32 syscalls (bit 30 set) or a kernel far newer than this code */
        LMP_OVERFLOW(syscalls_total);

    /* The kernel returns errors as -errno, in [-4095, -1]. */
    long ret = args->ret;
    if (ret < 0 && ret >= -4095) {
        struct error_key key = {.syscall = nr, .errno = -ret};
        u64 zero = 0;
        u64 *errors = syscall_errors_total.lookup_or_try_init(&key, &zero);
        if (errors)
            (*errors)++;
        else
            LMP_OVERFLOW(syscall_errors_total);
    }

#if LATENCY
    u32 tid = bpf_get_current_pid_tgid();
    u64 *start = syscall_start.lookup(&tid);
    if (start) {
        struct lmp_hist *hist = syscall_latency_seconds.lookup(&nr);
        if (hist)
            lmp_hist_observe(hist, bpf_ktime_get_ns() - *start);
        syscall_start.delete(&tid);
    }
#endif
    return 0;
}
