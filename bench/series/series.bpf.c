/* Benchmark-only: the map is filled by the benchmark; the program exists because a collector needs one,
 * and it never counts anything. */
#include "lmp.h"

struct series_key {
    u32 syscall;
    u32 errno;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct series_key);
    __type(value, u64);
} bench_series_total SEC(".maps");

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
    return 0;
}
