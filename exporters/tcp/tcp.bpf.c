/* tcp: TCP connections opened, closed and failed, their state transitions, resets, retransmissions,
 * and how long connections live and take to set up.
 *
 * sock:inet_sock_set_state fires at every TCP state change with the socket's address (skaddr), which
 * serves as an opaque key for per-socket birth times. Resets and retransmissions have their own tcp:
 * tracepoints. All of it runs in softirq or timer context as often as in the process's, so no
 * process or cgroup is attributed. */
#include "lmp.h"

/* Sockets between their first state change and CLOSE. An LRU hash: a socket whose CLOSE is lost
 * (a skipped program run) must not hold its entry forever. */
#define MAX_SOCKETS 65536
/* (from, to) state pairs: 12 states, so at most 144. */
#define MAX_TRANSITIONS 256
/* TCP states index the retransmit array; 16 leaves room past TCP_NEW_SYN_RECV (12). */
#define MAX_STATES 16
/* Reset reasons index the reset array: enum sk_rst_reason has 26 values in 6.18. */
#define MAX_RESET_REASONS 64

/* include/net/tcp_states.h; the same numbers tracefs prints in inet_sock_set_state's format. */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12
#define IPPROTO_TCP 6 /* inet_sock_set_state also fires for SCTP and MPTCP sockets */

/* Directions, in the order of the spec's `direction` label values. */
#define ACTIVE 0
#define PASSIVE 1

/* BCC builds `args` from the format, where tcp_send_reset's `reason` is an enum sk_rst_reason (v6.10)
 * that no installed header defines. Completing the enum gives it an int's size, as in the kernel. */
enum sk_rst_reason { LMP_SK_RST_REASON_ANY };

struct transition {
    u32 oldstate; /* named as in the tracepoint: the symbolic decoder reads its format by field name */
    u32 newstate;
};

struct socket {
    u64 born_ns;     /* SYN_SENT (connect) or SYN_RECV (a listener's new child) */
    u64 established; /* reached ESTABLISHED: only real connections have a lifetime */
};

BPF_TABLE("lru_hash", u64, struct socket, sockets, MAX_SOCKETS);
BPF_PERCPU_ARRAY(tcp_connections_opened_total, u64, 2);
BPF_PERCPU_ARRAY(tcp_connections_failed_total, u64, 2);
BPF_PERCPU_ARRAY(tcp_connections_closed_total, u64, 1);
BPF_PERCPU_HASH(tcp_state_transitions_total, struct transition, u64, MAX_TRANSITIONS);
BPF_PERCPU_ARRAY(tcp_resets_sent_total, u64, MAX_RESET_REASONS);
BPF_PERCPU_ARRAY(tcp_resets_received_total, u64, 1);
BPF_PERCPU_ARRAY(tcp_retransmits_total, u64, MAX_STATES);
BPF_PERCPU_ARRAY(tcp_connection_lifetime_seconds, struct lmp_hist, 1);
BPF_PERCPU_ARRAY(tcp_handshake_seconds, struct lmp_hist, 1);

/* -DFILTER_PORT=<port> counts only sockets with this local or remote port; 0 counts all. */
static __always_inline bool skip_ports(u16 sport, u16 dport)
{
#if FILTER_PORT
    return sport != FILTER_PORT && dport != FILTER_PORT;
#else
    return false;
#endif
}

static __always_inline void count(u64 *counter)
{
    if (counter)
        (*counter)++;
}

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != IPPROTO_TCP)
        return 0;
    u64 sk = (u64)args->skaddr, now = bpf_ktime_get_ns();
    u32 from = args->oldstate, to = args->newstate, zero = 0;
    u32 dir = from == TCP_SYN_SENT ? ACTIVE : PASSIVE;
    bool handshaking = from == TCP_SYN_SENT || from == TCP_SYN_RECV;
    bool counted = !skip_ports(args->sport, args->dport);

    /* Births are kept whatever the filter: connect() moves to SYN_SENT before it picks a source port. */
    if (to == TCP_SYN_SENT || to == TCP_SYN_RECV) {
        struct socket born = {.born_ns = now};
        sockets.update(&sk, &born);
    }
    if (counted) {
        struct transition key = {.oldstate = from, .newstate = to};
        u64 none = 0;
        u64 *n = tcp_state_transitions_total.lookup_or_try_init(&key, &none);
        if (n)
            (*n)++;
        else
            LMP_OVERFLOW(tcp_state_transitions_total);
    }

    if (to == TCP_ESTABLISHED && handshaking) {
        struct socket *s = sockets.lookup(&sk);
        if (s)
            s->established = 1;
        if (!counted)
            return 0;
        count(tcp_connections_opened_total.lookup(&dir));
        /* A passive child socket appears only with the handshake's last ACK (the request socket before
         * it changes state without this tracepoint), so only connect()'s handshake can be timed. */
        struct lmp_hist *h = tcp_handshake_seconds.lookup(&zero);
        if (s && h && dir == ACTIVE)
            lmp_hist_observe(h, now - s->born_ns);
    } else if (to == TCP_CLOSE) {
        struct socket *s = sockets.lookup(&sk);
        if (s) {
            struct lmp_hist *h = tcp_connection_lifetime_seconds.lookup(&zero);
            if (h && counted && s->established)
                lmp_hist_observe(h, (now - s->born_ns) / 1000); /* microseconds: hours fit the slots */
            sockets.delete(&sk);
        }
        if (!counted)
            return 0;
        if (handshaking)
            count(tcp_connections_failed_total.lookup(&dir));
        else if (from != TCP_LISTEN && from != TCP_CLOSE && from != TCP_NEW_SYN_RECV)
            count(tcp_connections_closed_total.lookup(&zero));
    }
    return 0;
}

/* The reset's addresses are sockaddrs (sin_port and sin6_port both at byte 2, network order). With no
 * socket (a segment to a closed port) they are the offending segment's, reversed: src is our side. */
TRACEPOINT_PROBE(tcp, tcp_send_reset)
{
    u16 sport = (u16)args->saddr[2] << 8 | args->saddr[3];
    u16 dport = (u16)args->daddr[2] << 8 | args->daddr[3];
    if (skip_ports(sport, dport))
        return 0;
    u32 reason = args->reason;
    u64 *n = tcp_resets_sent_total.lookup(&reason);
    if (n)
        (*n)++;
    else /* a reason past the array: a kernel far newer than this code */
        LMP_OVERFLOW(tcp_resets_sent_total);
    return 0;
}

TRACEPOINT_PROBE(tcp, tcp_receive_reset)
{
    u32 zero = 0;
    if (!skip_ports(args->sport, args->dport))
        count(tcp_resets_received_total.lookup(&zero));
    return 0;
}

/* Since v6.17 (ad892e912b84, "tcp: trace retransmit failures") this also fires for attempts that
 * failed, with err != 0; the kernel's TcpRetransSegs counts only those that were sent.
 * One event is one skb, which may carry several segments (a TSO/GSO skb resent whole once the
 * congestion window allows): TcpRetransSegs adds tcp_skb_pcount(skb), the tcp_gso_segs of the skb's
 * control block, and so does this. Offsets from the kernel's BTF, not the headers. */
TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
    if (args->err || skip_ports(args->sport, args->dport))
        return 0;
    u16 segs = 0;
    bpf_probe_read_kernel(&segs, sizeof(segs),
                          (void *)args->skbaddr + BTF_sk_buff_cb + BTF_tcp_skb_cb_tcp_gso_segs);
    u32 state = args->state;
    u64 *n = tcp_retransmits_total.lookup(&state);
    if (n)
        *n += segs ? segs : 1; /* a read that failed still counts the retransmission */
    else
        LMP_OVERFLOW(tcp_retransmits_total);
    return 0;
}

/* A SYN-ACK resent for a request socket (state NEW_SYN_RECV); TcpRetransSegs counts these too. */
TRACEPOINT_PROBE(tcp, tcp_retransmit_synack)
{
    u32 state = TCP_NEW_SYN_RECV;
    if (!skip_ports(args->sport, args->dport))
        count(tcp_retransmits_total.lookup(&state));
    return 0;
}

#if SRTT
/* Optional (-DSRTT=1): tcp_probe fires for every segment an established socket receives, so this
 * costs per packet, not per connection. srtt is the kernel's smoothed RTT in microseconds. */
BPF_PERCPU_ARRAY(tcp_srtt_seconds, struct lmp_hist, 1);

TRACEPOINT_PROBE(tcp, tcp_probe)
{
    u32 zero = 0;
    u32 srtt = args->srtt;
    if (srtt == 0 || skip_ports(args->sport, args->dport)) /* 0: no RTT sample yet */
        return 0;
    struct lmp_hist *h = tcp_srtt_seconds.lookup(&zero);
    if (h)
        lmp_hist_observe(h, srtt);
    return 0;
}
#endif
