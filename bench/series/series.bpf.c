/* Benchmark-only: the map is filled by the benchmark; the probe exists because a collector needs one,
 * and it never matches (no syscall number is negative). */
#include "lmp.h"

struct series_key {
    u32 syscall;
    u32 errno;
};

BPF_PERCPU_HASH(bench_series_total, struct series_key, u64, 16384);

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    return args->id < -1 ? 1 : 0;
}
