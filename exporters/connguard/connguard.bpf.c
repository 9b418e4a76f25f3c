/* connguard: a per-cgroup connection policy. For the processes of the cgroups it is attached to (and
 * their descendants), refuses connect() to listed destinations (listed: deny) or to any destination not
 * listed (listed: allow); connect() then fails with EPERM, before any packet leaves. Counts every
 * attempt, and sends each refusal to user space with the process's pid and command name.
 *
 * The cgroup/connect4 and cgroup/connect6 hooks (BPF_PROG_TYPE_CGROUP_SOCK_ADDR, Linux 4.17) run in the
 * connecting process's context, for TCP connect() and for connect() on UDP sockets. The exporter attaches
 * them through cgroup bpf links (Linux 5.7), which end with its process. Its policy lives in maps the
 * exporter rewrites while it runs; what systemd's IPAddressDeny= does with a cgroup/skb program, per packet, this
 * does once per connection, by address and port. */
#include "lmp.h"

/* Destinations the policy lists (its rules); the tries allocate entries as they are added. */
#define MAX_DESTINATIONS 16384
/* (cgroup, verdict) and (cgroup, destination, verdict) series; past them new series are counted as
 * overflow. Cgroups that are removed have their series forgotten by the exporter. */
#define MAX_CGROUPS 4096
#define MAX_REFUSALS 8192
/* 256 KiB of refusal events, about 4000 of them, between two reads of the exporter (every
 * 200 ms); a full buffer loses the event (counted as overflow), never the refusal itself. */
#define EVENT_BYTES (256 * 1024) /* a power-of-2 multiple of the page size, as a ring buffer must be */

/* Verdicts, in the order of the spec's enum label. */
#define ALLOWED 0
#define REFUSED 1
#define WOULD_REFUSE 2

/* Tries keyed by family, then (for port rules) the port in network byte order, then the address:
 * a rule for any port of a network, and a rule for one port of a network. prefixlen counts the family
 * byte and the port. */
struct dest_key {
    u32 prefixlen;
    u8 family;
    u8 addr[16];
    u8 pad[3];  /* explicit, so that a key on the stack has no uninitialised bytes */
};
struct dest_port_key {
    u32 prefixlen;
    u8 family;
    u8 port[2];
    u8 addr[16];
    u8 pad;
};
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC); /* a trie allocates its entries as they are added */
    __uint(max_entries, MAX_DESTINATIONS);
    __type(key, struct dest_key);
    __type(value, u8);
} connguard_destinations SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, MAX_DESTINATIONS);
    __type(key, struct dest_port_key);
    __type(value, u8);
} connguard_destination_ports SEC(".maps");

/* Written by the exporter: enforce (0: observe, count and report, refuse nothing) and allow_listed
 * (listed: allow, refuse what is not listed; 0, listed: deny, refuse what is listed). */
struct connguard_config {
    u32 enforce;
    u32 allow_listed;
};
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct connguard_config);
} connguard_config SEC(".maps");

struct attempt_key {
    u64 cgroup;
    u32 verdict;
    u32 pad;
};
struct refusal_key {
    u64 cgroup;
    u32 verdict;
    struct lmp_addr destination;
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_CGROUPS);
    __type(key, struct attempt_key);
    __type(value, u64);
} connguard_connects_total SEC(".maps");
LMP_OVERFLOW_COUNTER(connguard_connects_total);
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_REFUSALS);
    __type(key, struct refusal_key);
    __type(value, u64);
} connguard_refusals_total SEC(".maps");
LMP_OVERFLOW_COUNTER(connguard_refusals_total);

/* One refusal, for the admin's audit log. The destination is a struct lmp_addr spelt out field by field,
 * the layout the exporter's decoder reads from `family` on. */
struct refusal {
    u64 cgroup;
    u32 pid;
    u32 verdict;
    u8 family;
    u8 prefixlen;
    u16 port;
    u8 addr[16];
    char comm[16];
    u32 pad;
};
/* Puts struct refusal in the object's BTF, where the exporter reads the events' layout from: the type of a
 * local variable alone would not be there. */
struct refusal *connguard_event_type __attribute__((unused));

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, EVENT_BYTES);
} connguard_events SEC(".maps");
LMP_OVERFLOW_COUNTER(connguard_events);

static __always_inline bool listed(struct lmp_addr *dest)
{
    struct dest_port_key pk = {.prefixlen = 8 + 16 + (dest->family == LMP_IPV4 ? 32 : 128), .family = dest->family};
    __builtin_memcpy(pk.port, &dest->port, 2);
    __builtin_memcpy(pk.addr, dest->addr, 16);
    if (bpf_map_lookup_elem(&connguard_destination_ports, &pk))
        return true;
    struct dest_key k = {.prefixlen = 8 + (dest->family == LMP_IPV4 ? 32 : 128), .family = dest->family};
    __builtin_memcpy(k.addr, dest->addr, 16);
    return bpf_map_lookup_elem(&connguard_destinations, &k) != NULL;
}

/* 1 lets connect() go on, 0 fails it with EPERM. */
static __always_inline int guard(struct lmp_addr *dest)
{
    u32 zero = 0;
    struct connguard_config *cfg = bpf_map_lookup_elem(&connguard_config, &zero);
    if (!cfg)
        return 1;
    bool refuse = listed(dest) != (bool)cfg->allow_listed;
    struct attempt_key a = {.cgroup = bpf_get_current_cgroup_id(),
                            .verdict = !refuse ? ALLOWED : cfg->enforce ? REFUSED : WOULD_REFUSE};
    LMP_ADD(connguard_connects_total, &a, 1);
    if (!refuse)
        return 1;
    struct refusal_key r = {.cgroup = a.cgroup, .verdict = a.verdict, .destination = *dest};
    LMP_ADD(connguard_refusals_total, &r, 1);
    struct refusal e = {.cgroup = a.cgroup, .pid = bpf_get_current_pid_tgid() >> 32, .verdict = a.verdict,
                        .family = dest->family, .port = dest->port};
    __builtin_memcpy(e.addr, dest->addr, 16);
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    /* No wakeup per event: the exporter drains the buffer every 200 ms anyway, and waking its reader
     * for each refusal tripled what a refused connect() costs (lmp bench: 2.7 us against 0.35 us). */
    if (bpf_ringbuf_output(&connguard_events, &e, sizeof(e), BPF_RB_NO_WAKEUP) != 0)
        LMP_OVERFLOW(connguard_events);
    return a.verdict == REFUSED ? 0 : 1;
}

SEC("cgroup/connect4")
int connguard4(struct bpf_sock_addr *ctx)
{
    struct lmp_addr dest = {.family = LMP_IPV4, .port = (u16)ctx->user_port};
    u32 ip = ctx->user_ip4;
    __builtin_memcpy(dest.addr, &ip, 4);
    return guard(&dest);
}

/* An IPv4-mapped destination (::ffff:a.b.c.d, a dual-stack socket reaching IPv4) is checked as the IPv4
 * address it is: the kernel runs only this hook for it, and IPv4 rules must not be bypassed so. */
SEC("cgroup/connect6")
int connguard6(struct bpf_sock_addr *ctx)
{
    struct lmp_addr dest = {.family = LMP_IPV6, .port = (u16)ctx->user_port};
    u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
    if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
        dest.family = LMP_IPV4;
        __builtin_memcpy(dest.addr, &w3, 4);
        return guard(&dest);
    }
    __builtin_memcpy(dest.addr, &w0, 4);
    __builtin_memcpy(dest.addr + 4, &w1, 4);
    __builtin_memcpy(dest.addr + 8, &w2, 4);
    __builtin_memcpy(dest.addr + 12, &w3, 4);
    return guard(&dest);
}
