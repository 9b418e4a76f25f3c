/* netguard: an XDP packet guard. Drops packets whose source address is in a blocklist of CIDRs, and
 * packets over a per-source rate limit, at the earliest point the kernel sees a packet (before an skb is
 * allocated in native mode, right after in generic mode); counts every packet it passes or drops.
 *
 * Attached by the exporter through an XDP bpf link (Linux 5.9, "bpf: implement BPF XDP link"), so it
 * detaches when the exporter's process ends. Its policy lives in maps the exporter rewrites while it
 * runs: the blocklist trie and the one-entry config; the program is never reloaded for a new policy.
 *
 * struct ethhdr, iphdr and ipv6hdr are wire formats, the same in every kernel: their CO-RE relocations
 * resolve to the offsets they have always had, and the verifier checks each read against the packet's
 * bounds. */
#include "lmp.h"

#define ETH_P_IP 0x0800 /* include/uapi/linux/if_ether.h */
#define ETH_P_IPV6 0x86DD

/* Blocklist CIDRs (the policy's rules); the trie allocates entries as rules are added. */
#define MAX_RULES 16384
/* Source addresses whose rate is tracked; beyond it the least recently seen is forgotten (LRU), which
 * gives it a full bucket again: a flood from more sources than this is limited less, never more. */
#define MAX_SOURCES 65536
/* (interface, verdict, reason, rule) series: 64 interfaces x 3 verdicts x a few hundred rules. */
#define MAX_SERIES 8192
/* A CAS on a source's bucket that loses to another CPU is retried this often, then the packet passes:
 * under contention the guard errs towards letting allowed traffic through. */
#define CAS_TRIES 3

/* Verdicts and reasons, in the order of the spec's enum labels. */
#define PASS 0
#define DROP 1
#define WOULD_DROP 2
#define ALLOWED 0
#define NOT_IP 1
#define BLOCKLIST 2
#define RATE_LIMIT 3

/* The trie's key: family first, so an IPv6 rule such as ::/0 never covers IPv4 sources; prefixlen
 * counts the family's 8 bits. */
struct cidr_key {
    u32 prefixlen;
    u8 family;
    u8 addr[16];
    u8 pad[3];  /* explicit, so that a key on the stack has no uninitialised bytes */
};
/* A blocklist entry's value is the rule itself, to label what it dropped with. */
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC); /* a trie allocates its entries as they are added */
    __uint(max_entries, MAX_RULES);
    __type(key, struct cidr_key);
    __type(value, struct lmp_addr);
} netguard_blocklist SEC(".maps");

/* Written by the exporter: enforce (0: observe, count what would be dropped and pass it), and the rate
 * limit as a token bucket: one token every interval_ns, at most burst_ns worth saved (0: no limit). */
struct netguard_config {
    u32 enforce;
    u32 pad;
    u64 interval_ns;
    u64 burst_ns;
};
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct netguard_config);
} netguard_config SEC(".maps");

/* The token bucket of each source, kept as one number (the generic cell rate algorithm, GCRA, which is
 * a token bucket): the time at which the source's bucket is full again. Sources on several CPUs update
 * it with compare-and-swap, so no CPU's packet is counted twice or lost. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_SOURCES);
    __type(key, struct lmp_addr);
    __type(value, u64);
} netguard_rate SEC(".maps");

struct series {
    u32 ifindex;
    u8 verdict;
    u8 reason;
    u16 pad;
    struct lmp_addr rule;
};
/* One map feeds both metrics (each reads its field: the spec's `value:`), one update per packet. */
struct traffic {
    u64 packets;
    u64 bytes;
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_SERIES);
    __type(key, struct series);
    __type(value, struct traffic);
} netguard_traffic SEC(".maps");
LMP_OVERFLOW_COUNTER(netguard_traffic);

/* True when the packet is over its source's rate: it would take the bucket past its burst. */
static __always_inline bool over_rate(struct lmp_addr *src, struct netguard_config *cfg)
{
    u64 now = bpf_ktime_get_ns();
    u64 *full_at = bpf_map_lookup_elem(&netguard_rate, src);
    if (!full_at) {
        u64 first = now + cfg->interval_ns;  /* a new source starts with a full bucket, less this packet */
        bpf_map_update_elem(&netguard_rate, src, &first, BPF_ANY);
        return false;
    }
#pragma unroll
    for (int i = 0; i < CAS_TRIES; i++) {
        u64 old = *(volatile u64 *)full_at;
        u64 start = old > now ? old : now;
        if (start - now > cfg->burst_ns)
            return true;
        if (__sync_val_compare_and_swap(full_at, old, start + cfg->interval_ns) == old)
            return false;
    }
    return false;
}

static __always_inline void count(struct series *s, u64 bytes)
{
    struct traffic *t = LMP_LOOKUP_OR_ZERO(netguard_traffic, s);
    if (!t) {
        LMP_OVERFLOW(netguard_traffic);
        return;
    }
    t->packets++;
    t->bytes += bytes;
}

/* The packet's source into src (family 0: not IPv4 or IPv6, or too short to tell). */
static __always_inline void source(void *data, void *end, struct lmp_addr *src)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end)
            return;
        src->family = LMP_IPV4;
        __builtin_memcpy(src->addr, &ip->saddr, 4);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end)
            return;
        src->family = LMP_IPV6;
        __builtin_memcpy(src->addr, &ip6->saddr, 16);
    }
}

SEC("xdp")
int netguard(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    u32 zero = 0;
    struct netguard_config *cfg = bpf_map_lookup_elem(&netguard_config, &zero);
    if (!cfg)
        return XDP_PASS;
    struct series s = {.ifindex = ctx->ingress_ifindex, .reason = NOT_IP};
    struct lmp_addr src = {};
    source(data, end, &src);
    if (src.family) {
        struct cidr_key key = {.prefixlen = 8 + (src.family == LMP_IPV4 ? 32 : 128), .family = src.family};
        __builtin_memcpy(key.addr, src.addr, 16);
        struct lmp_addr *rule = bpf_map_lookup_elem(&netguard_blocklist, &key);
        if (rule) {
            s.reason = BLOCKLIST;
            s.rule = *rule;
        } else if (cfg->interval_ns && over_rate(&src, cfg)) {
            s.reason = RATE_LIMIT;
        } else {
            s.reason = ALLOWED;
        }
    }
    if (s.reason == BLOCKLIST || s.reason == RATE_LIMIT)
        s.verdict = cfg->enforce ? DROP : WOULD_DROP;
    count(&s, end - data);
    return s.verdict == DROP ? XDP_DROP : XDP_PASS;
}
