/* fileio: bytes moved by read and write system calls, the calls, and how long they took, by operation
 * (and optionally by cgroup).
 *
 * Each exit tracepoint (syscalls:sys_exit_read, _write, _pread64, _pwrite64) belongs to one syscall, so
 * the operation is known without the entry, and ctx->ret is the byte count (or -errno). These per-syscall
 * tracepoints exist only as classic ones: a tp_btf program on raw sys_exit would run for every syscall of
 * the host to count four of them. Counting needs the exit programs only; the latency histogram adds the
 * entry programs, which keep the entry time in the thread's task storage. */
#include "lmp.h"

/* (operation, cgroup) pairs: two operations per cgroup; a busy container host has a few hundred. */
#define MAX_KEYS 4096

/* Options (the spec's), set by the exporter before the programs load. */
const volatile bool latency = false;
const volatile u32 filter_tgid = 0;
const volatile bool cgroup = false;

/* Operations, in the order of the spec's `op` label values. */
#define OP_READ 0
#define OP_WRITE 1

struct io_key {
    u64 cgroup; /* 0 unless the cgroup option is on */
    u32 op;
    u32 pad; /* zeroed so that equal keys hash equally */
};

/* One map feeds the three metrics (each reads its field: the spec's `value:`), one update per call. */
struct io_stats {
    struct lmp_hist latency;
    u64 calls;
    u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_KEYS);
    __type(key, struct io_key);
    __type(value, struct io_stats);
} file_io SEC(".maps");
LMP_OVERFLOW_COUNTER(file_io);

struct entry {
    u64 ns; /* 0: not inside a read or write */
    u32 op; /* an exit is paired only with an entry of its own operation */
    u32 pad;
};

/* The latency option: each thread's entry, in its own task storage (no hash to update and delete). */
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct entry);
} io_start SEC(".maps");
LMP_OVERFLOW_COUNTER(io_start); /* a slot the kernel could not allocate */

static __always_inline bool skipped(void)
{
    return filter_tgid && (bpf_get_current_pid_tgid() >> 32) != filter_tgid;
}

static __always_inline int on_enter(u32 op)
{
    if (skipped())
        return 0;
    struct entry *e = bpf_task_storage_get(&io_start, bpf_get_current_task_btf(), 0,
                                           BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!e) {
        LMP_OVERFLOW(io_start);
        return 0;
    }
    e->ns = bpf_ktime_get_ns();
    e->op = op;
    return 0;
}

/* Loaded only with the latency option (the spec's `programs:`). */
SEC("tp/syscalls/sys_enter_read")
int sys_enter_read(void *ctx) { return on_enter(OP_READ); }
SEC("tp/syscalls/sys_enter_pread64")
int sys_enter_pread64(void *ctx) { return on_enter(OP_READ); }
SEC("tp/syscalls/sys_enter_write")
int sys_enter_write(void *ctx) { return on_enter(OP_WRITE); }
SEC("tp/syscalls/sys_enter_pwrite64")
int sys_enter_pwrite64(void *ctx) { return on_enter(OP_WRITE); }

static __always_inline int on_exit(u32 op, long ret)
{
    if (skipped())
        return 0;
    struct io_key key = {.op = op, .cgroup = cgroup ? bpf_get_current_cgroup_id() : 0};
    struct io_stats *stats = LMP_LOOKUP_OR_ZERO(file_io, &key);
    if (!stats) {
        LMP_OVERFLOW(file_io);
        return 0;
    }
    stats->calls++;
    if (ret > 0) /* a byte count; 0 is end of file, and -4095..-1 an error */
        stats->bytes += ret;

    if (latency) {
        struct entry *e = bpf_task_storage_get(&io_start, bpf_get_current_task_btf(), 0, 0);
        if (!e || !e->ns) /* entered before the exporter started */
            return 0;
        if (e->op == op)
            lmp_hist_observe(&stats->latency, bpf_ktime_get_ns() - e->ns);
        e->ns = 0;
    }
    return 0;
}

SEC("tp/syscalls/sys_exit_read")
int sys_exit_read(struct syscall_trace_exit *ctx) { return on_exit(OP_READ, ctx->ret); }
SEC("tp/syscalls/sys_exit_pread64")
int sys_exit_pread64(struct syscall_trace_exit *ctx) { return on_exit(OP_READ, ctx->ret); }
SEC("tp/syscalls/sys_exit_write")
int sys_exit_write(struct syscall_trace_exit *ctx) { return on_exit(OP_WRITE, ctx->ret); }
SEC("tp/syscalls/sys_exit_pwrite64")
int sys_exit_pwrite64(struct syscall_trace_exit *ctx) { return on_exit(OP_WRITE, ctx->ret); }
