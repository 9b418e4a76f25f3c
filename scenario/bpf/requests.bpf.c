/* scenario requests: the HTTP/1.x, DNS, Redis and PostgreSQL requests the followed threads serve or make,
 * each a span (protocol, role, method or command, status, start, duration) on the timeline, so that a
 * slow request shows beside the off-CPU, disk and lock waits inside it.
 *
 * The l7 collector's way (exporters/l7/l7.bpf.c), with its own parsers (exporters/l7/protocols.h, put in
 * front of this file by the loader): raw sys_enter keeps a followed thread's socket call (fd, buffer);
 * its sys_exit reads the first bytes moved and follows the connection, keyed by (process, fd): its
 * protocol from the first message, its role (client when it sent the first request), its pending
 * requests. A response pops the oldest one and becomes an event with the request's start. Where l7
 * counts, this records; it follows only the scenario's threads. The programs are attached by the loader
 * (l7_sys_enter, l7_sys_exit): syscalls.bpf.c holds BCC's own raw sys_enter and sys_exit. Plaintext
 * only: TLS needs l7's OpenSSL uprobes. */

/* (process, fd) connections followed at once; a new one past it is not, and counted in map_overflow. */
#define MAX_CONNS 4096
/* Bytes of each message read, as l7's PREFIX: a method, a status line, a DNS header, a RESP command. */
#define PREFIX 48
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define E2BIG 7

/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47

struct l7_call {
    u64 buf;    /* the buffer, iovec array or msghdr */
    u64 iovcnt;
    s32 fd;
    s32 nr;     /* -1: none in flight */
};

struct l7_key {
    u32 tgid;
    s32 fd;
};

struct l7_conn {
    struct l7_queue q; /* requests not yet answered */
    u16 lport, dport;
    u16 expect;       /* DNS over TCP: the length a separate 2-byte prefix announced */
    u8 prefix_bytes;
    u8 proto, role, dgram, error;
    char sqlstate[2];
};

/* A request answered: a span from `start` to the head's ts (the end of the call that moved the response). */
struct request_event {
    struct head h;
    u64 start;
    char command[16]; /* Redis */
    s32 fd;
    u16 what;         /* HTTP method, DNS query type, PostgreSQL: 0 simple, 1 extended (as l7's spec) */
    u16 status;       /* HTTP status; DNS rcode; Redis, PostgreSQL: 1 for an error reply */
    u16 port;         /* the service: the listening port of a server, the destination of a client */
    u8 protocol;      /* l7's P_HTTP ... P_POSTGRES */
    u8 role;          /* CLIENT, SERVER */
    char sqlstate[2]; /* PostgreSQL: the class of the error */
    u16 pad;
};

struct l7_scratch {
    struct l7_conn fresh;
    struct l7_msg m;
};

BPF_HASH(l7_calls, u32, struct l7_call, MAX_THREADS);
BPF_HASH(l7_conns, struct l7_key, struct l7_conn, MAX_CONNS);
BPF_TABLE("lru_hash", struct l7_key, u8, l7_not_sockets, MAX_CONNS); /* files, pipes, unix sockets */
BPF_PERCPU_ARRAY(l7_scratch, struct l7_scratch, 1);
BPF_PERCPU_ARRAY(request_totals, struct total, 16); /* [protocol * 2 + role]: requests, ns; exact */

static __always_inline bool socket_io(u32 nr)
{
    return nr == NR_read || nr == NR_write || nr == NR_readv || nr == NR_writev || nr == NR_sendto ||
           nr == NR_recvfrom || nr == NR_sendmsg || nr == NR_recvmsg;
}

int l7_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    u32 nr = ctx->args[1];
    if (!socket_io(nr) && nr != NR_close)
        return 0;
    struct thread *t = followed();
    if (!t)
        return 0;
    void *regs = (void *)ctx->args[0];
    u64 di = 0;
    FIELD(regs, pt_regs, di, di);
    if (nr == NR_close) { /* the fd's number may next be another socket, or a file */
        struct l7_key k = {.tgid = t->tgid, .fd = di};
        if (l7_conns.delete(&k))
            l7_not_sockets.delete(&k);
        return 0;
    }
    struct l7_call c = {.fd = di, .nr = nr};
    FIELD(regs, pt_regs, si, c.buf);
    FIELD(regs, pt_regs, dx, c.iovcnt);
    u32 tid = bpf_get_current_pid_tgid();
    l7_calls.update(&tid, &c);
    return 0;
}

/* The inet socket behind fd, through the task's file table (offsets from BTF); false for anything else. */
static __always_inline bool inet_socket(s32 fd, struct l7_conn *c)
{
    void *task = (void *)bpf_get_current_task(), *files = 0, *fdt = 0, *fds = 0, *file = 0, *inode = 0;
    void *sock = 0, *sk = 0;
    u32 max_fds = 0;
    u16 mode = 0, family = 0, lport = 0, dport = 0;
    short type = 0;
    FIELD(task, task_struct, files, files);
    FIELD(files, files_struct, fdt, fdt);
    FIELD(fdt, fdtable, max_fds, max_fds);
    FIELD(fdt, fdtable, fd, fds);
    if (fd < 0 || fd >= max_fds || bpf_probe_read_kernel(&file, sizeof(file), fds + fd * sizeof(void *)) || !file)
        return false;
    FIELD(file, file, f_inode, inode);
    FIELD(inode, inode, i_mode, mode);
    if ((mode & S_IFMT) != S_IFSOCK)
        return false;
    FIELD(file, file, private_data, sock);
    FIELD(sock, socket, sk, sk);
    FIELD(sk, sock_common, skc_family, family); /* struct sock begins with its sock_common */
    if (family != 2 && family != 10) /* AF_INET, AF_INET6 */
        return false;
    FIELD(sock, socket, type, type);
    FIELD(sk, sock_common, skc_num, lport);
    FIELD(sk, sock_common, skc_dport, dport);
    c->dgram = type == 2; /* SOCK_DGRAM */
    c->lport = lport;
    c->dport = bpf_ntohs(dport);
    return true;
}

static __always_inline struct l7_conn *conn_of(u32 tgid, s32 fd, struct l7_scratch *s)
{
    struct l7_key k = {.tgid = tgid, .fd = fd};
    struct l7_conn *c = l7_conns.lookup(&k);
    if (c || l7_not_sockets.lookup(&k))
        return c;
    __builtin_memset(&s->fresh, 0, sizeof(s->fresh));
    if (!inet_socket(fd, &s->fresh)) {
        u8 one = 1;
        l7_not_sockets.update(&k, &one);
        return 0;
    }
    if (l7_conns.insert(&k, &s->fresh) == -E2BIG)
        LMP_OVERFLOW(l7_conns);
    return l7_conns.lookup(&k);
}

/* The oldest pending request, answered with `status`: its span goes to the ring buffer. */
static __always_inline void l7_pop(struct l7_conn *c, u16 status, s32 fd)
{
    struct l7_pending *p = l7_answered(&c->q, c->proto == P_HTTP);
    if (!p)
        return;
    u64 now = bpf_ktime_get_ns(), pid_tgid = bpf_get_current_pid_tgid();
    u32 slot = (c->proto & 7) * 2 + (c->role & 1);
    struct total *total = request_totals.lookup(&slot);
    if (total) {
        total->ns += now - p->start;
        total->count++;
    }
    struct request_event *e = reserve(EV_REQUEST, sizeof(*e), now, pid_tgid, pid_tgid >> 32);
    if (!e)
        return;
    e->start = p->start;
    if (c->proto == P_REDIS)
        __builtin_memcpy(e->command, p->command, 16);
    else
        __builtin_memset(e->command, 0, 16);
    e->fd = fd;
    e->what = c->proto == P_REDIS ? 0 : p->what;
    e->status = status;
    e->port = c->role == SERVER ? c->lport : c->dport;
    e->protocol = c->proto;
    e->role = c->role;
    e->sqlstate[0] = c->proto == P_POSTGRES ? c->sqlstate[0] : 0;
    e->sqlstate[1] = c->proto == P_POSTGRES ? c->sqlstate[1] : 0;
    e->pad = 0;
    submit(e);
}

static __always_inline void l7_request(struct l7_conn *c, struct l7_msg *m, u64 ptr)
{
    char cmd[16] = {};
    bool query;
    int off;
    if (c->proto == P_HTTP && http_method(m->b)) {
        l7_push(&c->q, http_method(m->b), 0);
    } else if (c->proto == P_DNS) {
        off = dns_header(m, c->dgram, c->expect, &query);
        if (off >= 0 && query)
            l7_push(&c->q, dns_qtype(ptr, off, m->len), 0);
    } else if (c->proto == P_REDIS && redis_command(m->b, cmd)) {
        l7_push(&c->q, 0, cmd);
    } else if (c->proto == P_POSTGRES && (m->b[0] == 'Q' || m->b[0] == 'P' || m->b[0] == 'B')) {
        l7_push(&c->q, m->b[0] == 'Q' ? 0 : 1, 0);
    }
}

static __always_inline void l7_response(struct l7_conn *c, struct l7_msg *m, u64 ptr, u64 avail, s32 fd)
{
    bool query;
    int off;
    u8 b0 = m->b[0];
    if (c->proto == P_HTTP) {
        u16 status = http_status(m->b);
        if (status >= 200) /* 1xx: an interim answer, the final one follows */
            l7_pop(c, status, fd);
    } else if (c->proto == P_DNS) {
        off = dns_header(m, c->dgram, c->expect, &query);
        if (off >= 0 && !query)
            l7_pop(c, m->b[(off + 3) & 63] & 0xf, fd);
    } else if (c->proto == P_REDIS) {
        if (b0 == '+' || b0 == '-' || b0 == ':' || b0 == '$' || b0 == '*' || b0 == '_' || b0 == '%' || b0 == '#' ||
            b0 == ',')
            l7_pop(c, b0 == '-', fd);
    } else if (c->proto == P_POSTGRES && postgres_answer(ptr, avail, &c->error, c->sqlstate)) {
        l7_pop(c, c->error, fd);
        c->error = 0;
        c->sqlstate[0] = c->sqlstate[1] = 0;
    }
}

/* One message the thread sent (out) or received on connection c. */
static __always_inline void l7_message(struct l7_conn *c, struct l7_msg *m, u64 ptr, u64 avail, u64 len, bool out,
                                    s32 fd)
{
    if (c->proto == P_UNKNOWN) /* never parsed again, not even read */
        return;
    __builtin_memset(m, 0, sizeof(*m));
    m->len = len;
    u32 n = avail < PREFIX ? avail : PREFIX;
    if (bpf_probe_read_user(m->b, n & 63, (void *)ptr))
        return;
    if (!c->dgram && len < 3 && (c->proto == P_NONE || c->proto == P_DNS)) { /* DNS over TCP's length */
        c->expect = c->prefix_bytes ? c->expect << 8 | m->b[0] : (len == 2 ? be16(m->b) : m->b[0]);
        c->prefix_bytes += len;
        return;
    }
    if (c->proto == P_NONE || c->proto == P_TLS) {
        int found = l7_detect(m, c->dgram, c->expect);
        u8 proto = found & 0xff;
        if (proto == P_TLS || (proto == P_UNKNOWN && c->proto == P_TLS)) {
            c->proto = P_TLS;
            return;
        }
        c->proto = proto;
        c->role = (bool)(found & REQUEST) == out ? CLIENT : SERVER;
        if (proto == P_UNKNOWN)
            return;
    }
    if (out == (c->role == CLIENT))
        l7_request(c, m, ptr);
    else
        l7_response(c, m, ptr, avail, fd);
    c->expect = c->prefix_bytes = 0;
}

int l7_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    s64 ret = ctx->args[1];
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = pid_tgid;
    struct l7_call *call = l7_calls.lookup(&tid);
    if (!call || call->nr < 0)
        return 0;
    s32 nr = call->nr;
    call->nr = -1;
    if (ret <= 0)
        return 0;
    u32 zero = 0;
    struct l7_scratch *s = l7_scratch.lookup(&zero);
    if (!s)
        return 0;
    struct l7_conn *c = conn_of(pid_tgid >> 32, call->fd, s);
    if (!c)
        return 0;
    bool out = nr == NR_write || nr == NR_writev || nr == NR_sendto || nr == NR_sendmsg;
    u64 ptr = call->buf, avail = ret, iovcnt = call->iovcnt;
    if (nr == NR_sendmsg || nr == NR_recvmsg) { /* struct user_msghdr: name, namelen, iov, iovlen */
        u64 hdr[4];
        if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)ptr))
            return 0;
        ptr = hdr[2];
        iovcnt = hdr[3];
    }
    if (nr == NR_readv || nr == NR_writev || nr == NR_sendmsg || nr == NR_recvmsg) {
        u64 iov[4] = {}; /* the first two iovecs: base, len */
        if (bpf_probe_read_user(iov, iovcnt > 1 ? 32 : 16, (void *)ptr))
            return 0;
        if (iovcnt > 1 && iov[1] < 3 && ret > iov[1]) { /* a length prefix, then the message */
            l7_message(c, &s->m, iov[0], iov[1], iov[1], out, call->fd);
            avail = ret - iov[1];
            l7_message(c, &s->m, iov[2], iov[3] < avail ? iov[3] : avail, avail, out, call->fd);
            return 0;
        }
        ptr = iov[0];
        avail = iov[1] < avail ? iov[1] : avail;
    }
    l7_message(c, &s->m, ptr, avail, ret, out, call->fd);
    return 0;
}
