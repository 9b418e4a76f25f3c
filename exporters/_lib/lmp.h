/* Helpers shared by every LMP collector: in-kernel log2 histograms and map-overflow counting.
 * Each <name>.bpf.c includes it; the exporter also puts it in front of the collector's source when
 * compiling, because BCC rewrites map calls (lmp_overflow.lookup) only in the file it compiles. */
#ifndef LMP_H
#define LMP_H

#include <uapi/linux/ptrace.h>

/* 40 log2 slots reach 2^39 (9 minutes in ns, 512 GiB in bytes); larger values land in the last slot. */
#define LMP_HIST_SLOTS 40

/* A histogram as the exporter reads it: slot 0 counts values 0 and 1, slot k counts values in
 * (2^(k-1), 2^k], so its Prometheus upper bound `le` ("less than or equal") is 2^k.
 * `sum` keeps the exact total for the `_sum` series. */
struct lmp_hist {
    u64 slots[LMP_HIST_SLOTS];
    u64 sum;
};

/* Histograms live in per-CPU maps, so plain increments are safe: no other CPU writes this copy. */
static __always_inline void lmp_hist_observe(struct lmp_hist *h, u64 value)
{
    /* bpf_log2l(x) is floor(log2(x)) + 1, so x - 1 puts an exact power of two in its own bucket. */
    u32 slot = value > 1 ? bpf_log2l(value - 1) : 0;
    if (slot >= LMP_HIST_SLOTS)
        slot = LMP_HIST_SLOTS - 1;
    h->slots[slot]++;
    h->sum += value;
}

/* Every map has a fixed size. When an insert fails because a map is full, the event is counted here,
 * at the map's index (LMP_MAP_<name>, passed by the exporter as -D flags from the spec), and exported as
 * lmp_exporter_map_overflow_total{map}. */
#ifndef LMP_MAX_MAPS
#define LMP_MAX_MAPS 1
#endif
BPF_PERCPU_ARRAY(lmp_overflow, u64, LMP_MAX_MAPS);

static __always_inline void lmp_count_overflow(u32 index)
{
    u64 *n = lmp_overflow.lookup(&index);
    if (n)
        (*n)++;
}
/* BCC does not rewrite map calls inside macros, so collectors write hash updates out in full:
 *   u64 *v = m.lookup_or_try_init(&key, &zero); if (v) *v += n; else LMP_OVERFLOW(m); */
#define LMP_OVERFLOW(map) lmp_count_overflow(LMP_MAP_##map)

/* Two options many collectors share; an undefined option is 0 in #if, so a collector without them
 * can still call these.
 * -DFILTER_TGID=<pid>: count one process only (like bcc's -p); 0 counts every process. */
static __always_inline bool lmp_skip_tgid(void)
{
#if FILTER_TGID
    return (bpf_get_current_pid_tgid() >> 32) != FILTER_TGID;
#else
    return false;
#endif
}

/* -DCGROUP=1: key by the current task's cgroup v2 id (the `cgroup` label); 0 keeps one series. */
static __always_inline u64 lmp_cgroup_id(void)
{
#if CGROUP
    return bpf_get_current_cgroup_id();
#else
    return 0;
#endif
}

/* An IPv4 or IPv6 address as function components key their maps and events by it, and as the `cidr`
 * and `endpoint` label decoders read it: family LMP_IPV4 or LMP_IPV6 (0: no address), a prefix length
 * (a rule's network) or a port (a destination, in network byte order), then the address in network byte
 * order, an IPv4 one in its first four bytes. */
#define LMP_IPV4 4
#define LMP_IPV6 6
struct lmp_addr {
    u8 family;
    u8 prefixlen;
    u16 port;
    u8 addr[16];
};

#endif /* LMP_H */
