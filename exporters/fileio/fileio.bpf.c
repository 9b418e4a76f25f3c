/* fileio: bytes moved by read and write system calls, the calls, and how long they took, by operation
 * (and optionally by cgroup).
 *
 * Each exit tracepoint (syscalls:sys_exit_read, _write, _pread64, _pwrite64) belongs to one syscall,
 * so the operation is known without the entry, and args->ret is the byte count (or -errno). Counting
 * needs the exit probes only; the latency histogram adds the entry probes and a hash keyed by thread. */
#include "lmp.h"

/* (operation, cgroup) pairs: two operations per cgroup; a busy container host has a few hundred. */
#define MAX_KEYS 4096
/* Threads inside a read or write at once. A plain hash (an LRU update costs several times more on a
 * path this hot): sys_exit fires even for a thread killed mid-call, so each entry is deleted or
 * overwritten by the thread's next call. */
#define MAX_THREADS 16384

/* Operations, in the order of the spec's `op` label values. */
#define OP_READ 0
#define OP_WRITE 1

struct io_key {
    u64 cgroup; /* 0 unless -DCGROUP=1 */
    u32 op;
    u32 pad; /* zeroed so that equal keys hash equally */
};

BPF_PERCPU_HASH(file_io_bytes_total, struct io_key, u64, MAX_KEYS);
BPF_PERCPU_HASH(file_io_calls_total, struct io_key, u64, MAX_KEYS);

#if LATENCY
struct entry {
    u64 ns;
    u32 op; /* an exit is paired only with an entry of its own operation */
    u32 pad;
};
BPF_HASH(io_start, u32, struct entry, MAX_THREADS);
BPF_PERCPU_HASH(file_io_latency_seconds, struct io_key, struct lmp_hist, MAX_KEYS);
#endif

#if LATENCY
static __always_inline int on_enter(u32 op)
{
    if (lmp_skip_tgid())
        return 0;
    u32 tid = bpf_get_current_pid_tgid();
    struct entry e = {.ns = bpf_ktime_get_ns(), .op = op};
    if (io_start.update(&tid, &e))
        LMP_OVERFLOW(io_start);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) { return on_enter(OP_READ); }
TRACEPOINT_PROBE(syscalls, sys_enter_pread64) { return on_enter(OP_READ); }
TRACEPOINT_PROBE(syscalls, sys_enter_write) { return on_enter(OP_WRITE); }
TRACEPOINT_PROBE(syscalls, sys_enter_pwrite64) { return on_enter(OP_WRITE); }
#endif

static __always_inline int on_exit(u32 op, long ret)
{
    if (lmp_skip_tgid())
        return 0;
    struct io_key key = {.op = op, .cgroup = lmp_cgroup_id()};
    u64 zero = 0;
    u64 *calls = file_io_calls_total.lookup_or_try_init(&key, &zero);
    if (calls)
        (*calls)++;
    else
        LMP_OVERFLOW(file_io_calls_total);
    if (ret > 0) { /* a byte count; 0 is end of file, and -4095..-1 an error */
        u64 *bytes = file_io_bytes_total.lookup_or_try_init(&key, &zero);
        if (bytes)
            *bytes += ret;
        else
            LMP_OVERFLOW(file_io_bytes_total);
    }

#if LATENCY
    u32 tid = bpf_get_current_pid_tgid();
    struct entry *e = io_start.lookup(&tid);
    if (!e) /* entered before the exporter started */
        return 0;
    u64 latency = bpf_ktime_get_ns() - e->ns;
    u32 entered_op = e->op;
    io_start.delete(&tid);
    if (entered_op != op)
        return 0;
    struct lmp_hist empty = {};
    struct lmp_hist *hist = file_io_latency_seconds.lookup_or_try_init(&key, &empty);
    if (hist)
        lmp_hist_observe(hist, latency);
    else
        LMP_OVERFLOW(file_io_latency_seconds);
#endif
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_read) { return on_exit(OP_READ, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_pread64) { return on_exit(OP_READ, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return on_exit(OP_WRITE, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_pwrite64) { return on_exit(OP_WRITE, args->ret); }
