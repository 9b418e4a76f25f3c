/* scenario tcp (-DTCP=1): state changes, retransmissions and resets of the followed processes' TCP
 * sockets.
 *
 * The tcp and sock tracepoints name a socket by its address (skaddr) and run as often in softirq
 * context as in the process's. A socket becomes the process's when it makes one of the state changes
 * only a system call makes, in its own context: connect() (to SYN_SENT), listen() (to LISTEN), close()
 * or shutdown() (to FIN_WAIT1 or LAST_ACK, which is how an accepted socket is found). Other changes
 * can run in a softirq that happens to interrupt the process (on loopback, the listener's SYN_RECV
 * runs on top of the connecting process), so they never claim a socket. From then on every event of
 * that skaddr is recorded, until CLOSE. */

#define MAX_SOCKETS 4096
#define IPPROTO_TCP 6
#define TCP_SYN_SENT 2
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10

/* What happened, in the order of scenario/events.py's TCP_KINDS. */
#define TCP_STATE 0
#define TCP_RETRANSMIT 1
#define TCP_RESET_SENT 2
#define TCP_RESET_RECEIVED 3

struct owner {
    u32 tid;
    u32 tgid;
};

struct tcp_event {
    struct head h;
    u64 skaddr;
    u32 what;
    s32 oldstate;
    s32 newstate;
    u16 sport;
    u16 dport;
    u16 family;
    u16 pad;
    u8 saddr[16]; /* IPv4 in the first 4 bytes, or IPv6 */
    u8 daddr[16];
};

BPF_HASH(sockets, u64, struct owner, MAX_SOCKETS);
BPF_PERCPU_ARRAY(tcp_totals, u64, 4); /* by `what` */

static __always_inline struct tcp_event *tcp_event(u64 sk, u32 what, struct owner *o)
{
    u64 *n = tcp_totals.lookup(&what);
    if (n)
        (*n)++;
    struct tcp_event *e = reserve(EV_TCP, sizeof(*e), bpf_ktime_get_ns(), o->tid, o->tgid);
    if (e) {
        __builtin_memset(&e->skaddr, 0, sizeof(*e) - sizeof(e->h));
        e->skaddr = sk;
        e->what = what;
    }
    return e;
}

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != IPPROTO_TCP)
        return 0;
    u64 sk = (u64)args->skaddr;
    u32 to = args->newstate;
    bool by_syscall = to == TCP_SYN_SENT || to == TCP_LISTEN || to == TCP_FIN_WAIT1 || to == TCP_LAST_ACK;
    struct thread *t = by_syscall ? followed() : 0;
    if (t) {
        struct owner mine = {.tid = bpf_get_current_pid_tgid(), .tgid = t->tgid};
        sockets.update(&sk, &mine);
    }
    struct owner *o = sockets.lookup(&sk);
    if (!o)
        return 0;
    struct tcp_event *e = tcp_event(sk, TCP_STATE, o);
    if (e) {
        e->oldstate = args->oldstate;
        e->newstate = args->newstate;
        e->sport = args->sport;
        e->dport = args->dport;
        e->family = args->family;
        bpf_probe_read_kernel(e->saddr, 4, args->saddr);
        bpf_probe_read_kernel(e->daddr, 4, args->daddr);
        if (args->family == 10) { /* AF_INET6 */
            bpf_probe_read_kernel(e->saddr, 16, args->saddr_v6);
            bpf_probe_read_kernel(e->daddr, 16, args->daddr_v6);
        }
        submit(e);
    }
    if (args->newstate == TCP_CLOSE)
        sockets.delete(&sk);
    return 0;
}

/* Since v6.17 this also fires for attempts that failed (err != 0); only those sent count. */
TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
    u64 sk = (u64)args->skaddr;
    struct owner *o = sockets.lookup(&sk);
    if (!o || args->err)
        return 0;
    struct tcp_event *e = tcp_event(sk, TCP_RETRANSMIT, o);
    if (e) {
        e->oldstate = e->newstate = args->state;
        e->sport = args->sport;
        e->dport = args->dport;
        e->family = args->family;
        submit(e);
    }
    return 0;
}

/* BCC builds `args` from the format, where `reason` is an enum sk_rst_reason (v6.10) that no installed
 * header defines; completing it gives it an int's size, as in the kernel (see exporters/tcp). */
enum sk_rst_reason { LMP_SCENARIO_SK_RST_REASON_ANY };

TRACEPOINT_PROBE(tcp, tcp_send_reset)
{
    u64 sk = (u64)args->skaddr;
    struct owner *o = sockets.lookup(&sk);
    if (!o)
        return 0;
    struct tcp_event *e = tcp_event(sk, TCP_RESET_SENT, o);
    if (e) {
        e->oldstate = e->newstate = args->state;
        submit(e);
    }
    return 0;
}

TRACEPOINT_PROBE(tcp, tcp_receive_reset)
{
    u64 sk = (u64)args->skaddr;
    struct owner *o = sockets.lookup(&sk);
    if (!o)
        return 0;
    struct tcp_event *e = tcp_event(sk, TCP_RESET_RECEIVED, o);
    if (e) {
        e->sport = args->sport;
        e->dport = args->dport;
        e->family = args->family;
        submit(e);
    }
    return 0;
}
