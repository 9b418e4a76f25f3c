/* What every LMP collector's kernel code shares: the kernel's types, libbpf's helpers, in-kernel log2
 * histograms and map-overflow counting. Each <name>.bpf.c includes it first.
 *
 * Compiled once, ahead of time (CO-RE: "compile once, run everywhere"): vmlinux.h holds every kernel type
 * as BTF describes it, and each struct field read through BPF_CORE_READ() or a tp_btf program's typed
 * arguments is relocated by libbpf, at load time, to where the running kernel keeps it. */
#ifndef LMP_H
#define LMP_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

/* 40 log2 slots reach 2^39 (9 minutes in ns, 512 GiB in bytes); larger values land in the last slot. */
#define LMP_HIST_SLOTS 40

/* A histogram as the exporter reads it: slot 0 counts values 0 and 1, slot k counts values in
 * (2^(k-1), 2^k], so its Prometheus upper bound `le` ("less than or equal") is 2^k.
 * `sum` keeps the exact total for the `_sum` series. */
struct lmp_hist {
    u64 slots[LMP_HIST_SLOTS];
    u64 sum;
};

/* floor(log2(v)) for v > 0, halving the range at each step: six steps for 64 bits. */
static __always_inline u32 lmp_log2(u64 v)
{
    u32 r = 0;
    if (v >> 32) { v >>= 32; r += 32; }
    if (v >> 16) { v >>= 16; r += 16; }
    if (v >> 8)  { v >>= 8;  r += 8; }
    if (v >> 4)  { v >>= 4;  r += 4; }
    if (v >> 2)  { v >>= 2;  r += 2; }
    if (v >> 1)  { r += 1; }
    return r;
}

/* Histograms live in per-CPU maps, so plain increments are safe: no other CPU writes this copy. */
static __always_inline void lmp_hist_observe(struct lmp_hist *h, u64 value)
{
    /* ceil(log2(value)): an exact power of two lands in its own bucket. */
    u32 slot = value > 1 ? lmp_log2(value - 1) + 1 : 0;
    if (slot >= LMP_HIST_SLOTS)
        slot = LMP_HIST_SLOTS - 1;
    h->slots[slot]++;
    h->sum += value;
}

/* The value of `key` in a hash map, made zero when missing; NULL when the map is full. The zero value is
 * built only for a new key: a histogram's is hundreds of bytes to clear, too many for every event. The
 * value's type is the map's own (__type(value, ...) declares a pointer member of that type). */
#define LMP_LOOKUP_OR_ZERO(map, key)                                            \
    ({                                                                          \
        typeof(*(map).value) *__v = bpf_map_lookup_elem(&(map), key);           \
        if (!__v) {                                                             \
            typeof(*(map).value) __zero;                                        \
            __builtin_memset(&__zero, 0, sizeof(__zero));                       \
            /* BPF_NOEXIST: another CPU may have made it meanwhile; the lookup below finds theirs. */ \
            bpf_map_update_elem(&(map), key, &__zero, BPF_NOEXIST);             \
            __v = bpf_map_lookup_elem(&(map), key);                             \
        }                                                                       \
        __v;                                                                    \
    })

/* Every map has a fixed size. A map that can fill up declares LMP_OVERFLOW_COUNTER(map) beside it: a
 * global, lmp_overflow_<map>, that LMP_OVERFLOW(map) adds one to when an insert fails. The exporter finds
 * the counters in the object's .bss by name and exports them as lmp_exporter_map_overflow_total{map}.
 * One atomic add, and only when the map is already full. */
#define LMP_OVERFLOW_COUNTER(map) u64 lmp_overflow_##map = 0
#define LMP_OVERFLOW(map) __sync_fetch_and_add(&lmp_overflow_##map, 1)

/* A per-CPU hash of u64 counters (LMP_ADD's map), and the count of what it dropped when full. */
#define LMP_COUNTERS(name, key_type, entries)          \
    struct {                                           \
        __uint(type, BPF_MAP_TYPE_PERCPU_HASH);        \
        __uint(max_entries, entries);                  \
        __type(key, key_type);                         \
        __type(value, u64);                            \
    } name SEC(".maps");                               \
    LMP_OVERFLOW_COUNTER(name)

/* Counters: add n to a hash map's u64 counter for key, or count the overflow when the map is full. */
#define LMP_ADD(map, key, n)                                    \
    ({                                                          \
        u64 *__n = LMP_LOOKUP_OR_ZERO(map, key);                \
        if (__n)                                                \
            *__n += (n);                                        \
        else                                                    \
            LMP_OVERFLOW(map);                                  \
    })

/* Histograms: observe value into a hash map's histogram for key, or count the overflow. */
#define LMP_OBSERVE(map, key, value)                            \
    ({                                                          \
        struct lmp_hist *__h = LMP_LOOKUP_OR_ZERO(map, key);    \
        if (__h)                                                \
            lmp_hist_observe(__h, value);                       \
        else                                                    \
            LMP_OVERFLOW(map);                                  \
    })

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

/* The kernel lets only GPL-compatible programs call the helpers LMP uses (bpf_probe_read_kernel, task
 * storage, ...). */
char LICENSE[] SEC("license") = "GPL";

#endif /* LMP_H */
