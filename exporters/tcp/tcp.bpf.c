/* tcp: TCP connections opened, closed and failed, their state transitions, resets, retransmissions, and
 * how long connections live and take to set up.
 *
 * sock:inet_sock_set_state fires at every TCP state change; as a tp_btf program it gets the socket
 * itself, whose birth time it keeps in the socket's own storage (freed with the socket). Resets and
 * retransmissions have their own tcp: tracepoints, rare enough to read from their classic records. All
 * of it runs in softirq or timer context as often as in the process's, so no process or cgroup is
 * attributed. */
#include "lmp.h"

/* (from, to) state pairs: 12 states, so at most 144. */
#define MAX_TRANSITIONS 256
/* TCP states index the retransmit array; 16 leaves room past TCP_NEW_SYN_RECV (12). */
#define MAX_STATES 16
/* Reset reasons index the reset array: enum sk_rst_reason has 26 values in 6.18. */
#define MAX_RESET_REASONS 64

/* Options (the spec's), set by the exporter before the programs load. */
const volatile u32 filter_port = 0;

/* Directions, in the order of the spec's `direction` label values. */
#define ACTIVE 0
#define PASSIVE 1
#define IPPROTO_TCP 6 /* inet_sock_set_state also fires for SCTP and MPTCP sockets */

struct transition {
    u32 oldstate; /* named as in the tracepoint: the symbolic decoder reads its format by field name */
    u32 newstate;
};

struct birth {
    u64 born_ns;     /* SYN_SENT (connect) or SYN_RECV (a listener's new child) */
    u64 established; /* reached ESTABLISHED: only real connections have a lifetime */
};

struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct birth);
} sockets SEC(".maps");

#define ARRAY(name, entries, value_type)        \
    struct {                                    \
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); \
        __uint(max_entries, entries);           \
        __type(key, u32);                       \
        __type(value, value_type);              \
    } name SEC(".maps")

ARRAY(tcp_connections_opened_total, 2, u64);
ARRAY(tcp_connections_failed_total, 2, u64);
ARRAY(tcp_connections_closed_total, 1, u64);
ARRAY(tcp_resets_sent_total, MAX_RESET_REASONS, u64);
ARRAY(tcp_resets_received_total, 1, u64);
ARRAY(tcp_retransmits_total, MAX_STATES, u64);
ARRAY(tcp_connection_lifetime_seconds, 1, struct lmp_hist);
ARRAY(tcp_handshake_seconds, 1, struct lmp_hist);
ARRAY(tcp_srtt_seconds, 1, struct lmp_hist);
LMP_OVERFLOW_COUNTER(tcp_resets_sent_total);
LMP_OVERFLOW_COUNTER(tcp_retransmits_total);

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_TRANSITIONS);
    __type(key, struct transition);
    __type(value, u64);
} tcp_state_transitions_total SEC(".maps");
LMP_OVERFLOW_COUNTER(tcp_state_transitions_total);

/* The filter_port option counts only sockets with this local or remote port; 0 counts all. */
static __always_inline bool skipped(u16 sport, u16 dport)
{
    return filter_port && sport != filter_port && dport != filter_port;
}

/* The ports as the tracepoint's record has them, inet_sport and inet_dport: skc_num, the local port,
 * is 0 by the time a listener's child closes. */
static __always_inline bool skipped_socket(struct sock *sk)
{
    struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
    if (!tp)
        return true;
    struct inet_sock *inet = &tp->inet_conn.icsk_inet;
    return skipped(bpf_ntohs(inet->inet_sport), bpf_ntohs(sk->__sk_common.skc_dport));
}

static __always_inline void add(void *array, u32 index, u64 n)
{
    u64 *counter = bpf_map_lookup_elem(array, &index);
    if (counter)
        *counter += n;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, struct sock *sk, int from, int to)
{
    if (sk->sk_protocol != IPPROTO_TCP)
        return 0;
    u64 now = bpf_ktime_get_ns();
    u32 dir = from == TCP_SYN_SENT ? ACTIVE : PASSIVE, zero = 0;
    bool handshaking = from == TCP_SYN_SENT || from == TCP_SYN_RECV;
    bool counted = !filter_port || !skipped_socket(sk);

    /* Births are kept whatever the filter: connect() moves to SYN_SENT before it picks a source port. */
    struct birth *s;
    if (to == TCP_SYN_SENT || to == TCP_SYN_RECV) {
        s = bpf_sk_storage_get(&sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
        if (s) {
            s->born_ns = now;
            s->established = 0;
        }
    }
    if (counted) {
        struct transition key = {.oldstate = from, .newstate = to};
        LMP_ADD(tcp_state_transitions_total, &key, 1);
    }

    if (to == TCP_ESTABLISHED && handshaking) {
        s = bpf_sk_storage_get(&sockets, sk, 0, 0);
        if (s)
            s->established = 1;
        if (!counted)
            return 0;
        add(&tcp_connections_opened_total, dir, 1);
        /* A passive child socket appears only with the handshake's last ACK (the request socket before it
         * changes state without this tracepoint), so only connect()'s handshake can be timed. */
        struct lmp_hist *h = bpf_map_lookup_elem(&tcp_handshake_seconds, &zero);
        if (s && s->born_ns && h && dir == ACTIVE)
            lmp_hist_observe(h, now - s->born_ns);
    } else if (to == TCP_CLOSE) {
        s = bpf_sk_storage_get(&sockets, sk, 0, 0);
        if (s && s->born_ns) {
            struct lmp_hist *h = bpf_map_lookup_elem(&tcp_connection_lifetime_seconds, &zero);
            if (h && counted && s->established)
                lmp_hist_observe(h, (now - s->born_ns) / 1000); /* microseconds: hours fit the slots */
            s->born_ns = 0;
        }
        if (!counted)
            return 0;
        if (handshaking)
            add(&tcp_connections_failed_total, dir, 1);
        else if (from != TCP_LISTEN && from != TCP_CLOSE && from != TCP_NEW_SYN_RECV)
            add(&tcp_connections_closed_total, 0, 1);
    }
    return 0;
}

/* The reset's addresses are sockaddrs (sin_port and sin6_port both at byte 2, network order). With no
 * socket (a segment to a closed port) they are the offending segment's, reversed: src is our side. */
SEC("tp/tcp/tcp_send_reset")
int tcp_send_reset(struct trace_event_raw_tcp_send_reset *ctx)
{
    u16 sport = (u16)ctx->saddr[2] << 8 | ctx->saddr[3];
    u16 dport = (u16)ctx->daddr[2] << 8 | ctx->daddr[3];
    if (skipped(sport, dport))
        return 0;
    u32 reason = ctx->reason;
    u64 *n = bpf_map_lookup_elem(&tcp_resets_sent_total, &reason);
    if (n)
        (*n)++;
    else /* a reason past the array: a kernel far newer than this code */
        LMP_OVERFLOW(tcp_resets_sent_total);
    return 0;
}

SEC("tp/tcp/tcp_receive_reset")
int tcp_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
    if (!skipped(ctx->sport, ctx->dport))
        add(&tcp_resets_received_total, 0, 1);
    return 0;
}

/* Since v6.17 (ad892e912b84, "tcp: trace retransmit failures") this also fires for attempts that failed,
 * with err != 0; the kernel's TcpRetransSegs counts only those that were sent. One event is one skb,
 * which may carry several segments (a TSO/GSO skb resent whole once the congestion window allows):
 * TcpRetransSegs adds tcp_skb_pcount(skb), the tcp_gso_segs of the skb's control block, and so does
 * this, read through CO-RE. */
SEC("tp/tcp/tcp_retransmit_skb")
int tcp_retransmit_skb(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
    if (bpf_core_field_exists(ctx->err) && ctx->err)
        return 0;
    if (skipped(ctx->sport, ctx->dport))
        return 0;
    struct sk_buff *skb = (struct sk_buff *)ctx->skbaddr;
    struct tcp_skb_cb *cb = (struct tcp_skb_cb *)BPF_CORE_READ(skb, cb);
    u16 segs = BPF_CORE_READ(cb, tcp_gso_segs);
    u32 state = ctx->state;
    u64 *n = bpf_map_lookup_elem(&tcp_retransmits_total, &state);
    if (n)
        *n += segs ? segs : 1; /* a read that failed still counts the retransmission */
    else
        LMP_OVERFLOW(tcp_retransmits_total);
    return 0;
}

/* A SYN-ACK resent for a request socket (state NEW_SYN_RECV); TcpRetransSegs counts these too. */
SEC("tp/tcp/tcp_retransmit_synack")
int tcp_retransmit_synack(struct trace_event_raw_tcp_retransmit_synack *ctx)
{
    if (!skipped(ctx->sport, ctx->dport))
        add(&tcp_retransmits_total, TCP_NEW_SYN_RECV, 1);
    return 0;
}

/* Loaded only with the srtt option (the spec's `programs:`): tcp_probe fires for every segment an
 * established socket receives, so this costs per packet, not per connection. srtt_us holds 8 times the
 * smoothed RTT in microseconds, as the tracepoint's record divides it. */
SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
    struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
    if (!tp)
        return 0;
    u32 us = tp->srtt_us >> 3, zero = 0;
    if (us == 0 || (filter_port && skipped_socket(sk))) /* 0: no RTT sample yet */
        return 0;
    struct lmp_hist *h = bpf_map_lookup_elem(&tcp_srtt_seconds, &zero);
    if (h)
        lmp_hist_observe(h, us);
    return 0;
}
