/* connguard: a per-cgroup connection policy. For the processes of the cgroups it is attached to (and
 * their descendants), refuses connect() to listed destinations (policy deny) or to any destination not
 * listed (policy allow); connect() then fails with EPERM, before any packet leaves. Counts every
 * attempt, and sends each refusal to user space with the process's pid and command name.
 *
 * The cgroup/connect4 and cgroup/connect6 hooks (BPF_PROG_TYPE_CGROUP_SOCK_ADDR, Linux 4.17) run in the
 * connecting process's context, for TCP connect() and for connect() on UDP sockets. The exporter attaches
 * them through cgroup bpf links (Linux 5.7), which end with its process. Rules live in maps the exporter
 * rewrites while it runs; what systemd's IPAddressDeny= does with a cgroup/skb program, per packet, this
 * does once per connection, by address and port. */
#include "lmp.h"
#include <uapi/linux/bpf.h>

/* Destinations the rules list; the tries allocate entries as they are added. */
#define MAX_DESTINATIONS 16384
/* (cgroup, verdict) and (cgroup, destination, verdict) series; past them new series are counted as
 * overflow. Cgroups that are removed have their series forgotten by the exporter. */
#define MAX_CGROUPS 4096
#define MAX_REFUSALS 8192
/* 64 pages (256 KiB) of refusal events, about 4000 of them, between two reads of the exporter (every
 * 200 ms); a full buffer loses the event (counted as overflow), never the refusal itself. */
#define EVENT_PAGES 64

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
BPF_LPM_TRIE(connguard_destinations, struct dest_key, u8, MAX_DESTINATIONS);
BPF_LPM_TRIE(connguard_destination_ports, struct dest_port_key, u8, MAX_DESTINATIONS);

/* Written by the exporter: enforce (0: observe, count and report, refuse nothing) and allow_listed
 * (policy allow: refuse what is not listed; 0, policy deny: refuse what is listed). */
struct connguard_config {
    u32 enforce;
    u32 allow_listed;
};
BPF_ARRAY(connguard_config, struct connguard_config, 1);

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
BPF_PERCPU_HASH(connguard_connects_total, struct attempt_key, u64, MAX_CGROUPS);
BPF_PERCPU_HASH(connguard_refusals_total, struct refusal_key, u64, MAX_REFUSALS);

/* The destination is a struct lmp_addr spelt out field by field: BCC builds the Python class of an event
 * from its fields, and knows no nested struct. */
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
BPF_RINGBUF_OUTPUT(connguard_events, EVENT_PAGES);

static __always_inline bool listed(struct lmp_addr *dest)
{
    struct dest_port_key pk = {.prefixlen = 8 + 16 + (dest->family == LMP_IPV4 ? 32 : 128), .family = dest->family};
    __builtin_memcpy(pk.port, &dest->port, 2);
    __builtin_memcpy(pk.addr, dest->addr, 16);
    if (connguard_destination_ports.lookup(&pk))
        return true;
    struct dest_key k = {.prefixlen = 8 + (dest->family == LMP_IPV4 ? 32 : 128), .family = dest->family};
    __builtin_memcpy(k.addr, dest->addr, 16);
    return connguard_destinations.lookup(&k) != NULL;
}

/* 1 lets connect() go on, 0 fails it with EPERM. */
static __always_inline int guard(struct lmp_addr *dest)
{
    u32 zero = 0;
    struct connguard_config *cfg = connguard_config.lookup(&zero);
    if (!cfg)
        return 1;
    bool refuse = listed(dest) != (bool)cfg->allow_listed;
    struct attempt_key a = {.cgroup = bpf_get_current_cgroup_id(),
                            .verdict = !refuse ? ALLOWED : cfg->enforce ? REFUSED : WOULD_REFUSE};
    u64 one = 0;
    u64 *n = connguard_connects_total.lookup_or_try_init(&a, &one);
    if (n)
        (*n)++;
    else
        LMP_OVERFLOW(connguard_connects_total);
    if (!refuse)
        return 1;
    struct refusal_key r = {.cgroup = a.cgroup, .verdict = a.verdict, .destination = *dest};
    n = connguard_refusals_total.lookup_or_try_init(&r, &one);
    if (n)
        (*n)++;
    else
        LMP_OVERFLOW(connguard_refusals_total);
    struct refusal e = {.cgroup = a.cgroup, .pid = bpf_get_current_pid_tgid() >> 32, .verdict = a.verdict,
                        .family = dest->family, .port = dest->port};
    __builtin_memcpy(e.addr, dest->addr, 16);
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    if (connguard_events.ringbuf_output(&e, sizeof(e), 0) != 0)
        LMP_OVERFLOW(connguard_events);
    return a.verdict == REFUSED ? 0 : 1;
}

int connguard4(struct bpf_sock_addr *ctx)
{
    struct lmp_addr dest = {.family = LMP_IPV4, .port = (u16)ctx->user_port};
    u32 ip = ctx->user_ip4;
    __builtin_memcpy(dest.addr, &ip, 4);
    return guard(&dest);
}

/* An IPv4-mapped destination (::ffff:a.b.c.d, a dual-stack socket reaching IPv4) is checked as the IPv4
 * address it is: the kernel runs only this hook for it, and IPv4 rules must not be bypassed so. */
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
