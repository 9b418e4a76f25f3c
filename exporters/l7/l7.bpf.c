/* l7: application requests (HTTP/1.x, DNS, Redis, PostgreSQL), their rate, errors and duration, from
 * syscall tracepoints alone, and over TLS from uprobes on OpenSSL.
 *
 * One program at the exit of each socket I/O syscall (and close) reads the first bytes the call moved
 * (PREFIX, never more), the call's arguments taken from its saved registers, and follows each connection, keyed
 * by (process, fd), in a bounded hash: its protocol (from its first message), its role (client when
 * it sends the first request, server when it receives it), its service port and its pending requests.
 * A response pops the oldest pending request: its count, by protocol fields, and its duration. Only
 * counters and histograms leave the kernel: no payload is kept in any map.
 *
 * TLS: SSL_write and SSL_read(_ex) uprobes hand the plaintext to the same parser, on the fd of the
 * syscall the library makes inside the call (or the last one it made for that SSL object); the
 * connection's own syscalls then carry ciphertext, which is ignored. */
#include "lmp.h"

/* (process, fd) pairs followed at once; a new one past it is not followed, and counted. */
#define MAX_CONNS 16384
/* Request keys: protocol fields x service x cgroup; small sets in practice. */
#define MAX_KEYS 8192
/* Service ports before the rest fold into port 0 ("other"). */
#define MAX_SERVICES 64
/* Bytes read from each message: enough for a method, a status line, a DNS header, a RESP command. */
#define PREFIX 48
/* Messages of one sendmmsg/recvmmsg parsed (a resolver sends A and AAAA queries in one). */
#define MMSGS 4

const volatile bool cgroup = false;
const volatile u32 filter_tgid = 0;
const volatile bool tls = true; /* the SSL uprobes are attached */

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
#define NR_recvmmsg 299
#define NR_sendmmsg 307

#include "protocols.h"
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define E2BIG 7

/* A thread inside SSL_read or SSL_write (tls): its SSL object, plaintext buffer and length (or, for the _ex
 * forms, where the library writes the length), and the fd of the syscall the library made in it. */
struct call {
    u64 ssl;
    u64 tls_buf;
    u64 tls_len;
    s32 tls_fd;
    u8 tls;
};
#define TLS_WRITE 1
#define TLS_READ 2

struct conn_key {
    u32 tgid;
    s32 fd;
};

struct conn {
    struct l7_queue q;          /* requests not yet answered */
    u16 service, lport, dport;
    u16 expect;                 /* DNS over TCP: the length a message's separate 2-byte prefix announced */
    u8 prefix_bytes;            /* bytes of that prefix seen */
    u8 proto, role, dgram, tls, error;
    u8 closed;                  /* the fd was closed: the entry waits for the number's next socket */
    char sqlstate[2];           /* PostgreSQL: the class of the response's first error */
};

/* One request's labels; each protocol's metric reads the fields it has, the others stay zero. */
struct req_key {
    u64 cgroup;
    char command[16];
    u16 service;
    u16 status;    /* HTTP status code; DNS rcode; Redis and PostgreSQL: 1 for an error reply */
    u16 qtype;
    u8 role;
    u8 method;     /* HTTP method; PostgreSQL query kind (simple, extended) */
    char sqlstate_class[4];
};

struct dur_key {
    u64 cgroup;
    u16 service;
    u8 role;
};

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct call);
} calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_CONNS);
    __type(key, struct conn_key);
    __type(value, struct conn);
} connections SEC(".maps");
LMP_OVERFLOW_COUNTER(connections);

/* fds that are not inet sockets (files, pipes, unix sockets): checked once, forgotten at close. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, MAX_CONNS);
    __type(key, struct conn_key);
    __type(value, u8);
} not_sockets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, u64);
    __type(value, s32);
} ssl_fds SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_SERVICES);
    __type(key, u16);
    __type(value, u8);
} services SEC(".maps");

#define HISTOGRAM(name)                            \
    struct {                                       \
        __uint(type, BPF_MAP_TYPE_PERCPU_HASH);    \
        __uint(max_entries, 1024);                 \
        __type(key, struct dur_key);               \
        __type(value, struct lmp_hist);            \
    } name SEC(".maps");                           \
    LMP_OVERFLOW_COUNTER(name)

LMP_COUNTERS(http_requests_total, struct req_key, MAX_KEYS);
LMP_COUNTERS(dns_requests_total, struct req_key, MAX_KEYS);
LMP_COUNTERS(redis_requests_total, struct req_key, MAX_KEYS);
LMP_COUNTERS(postgres_requests_total, struct req_key, MAX_KEYS);
HISTOGRAM(http_request_duration_seconds);
HISTOGRAM(dns_request_duration_seconds);
HISTOGRAM(redis_request_duration_seconds);
HISTOGRAM(postgres_request_duration_seconds);

struct proto_key {
    u8 protocol;
    u8 role;
};
LMP_COUNTERS(l7_connections_total, struct proto_key, 64);

static __always_inline bool skipped(void)
{
    return filter_tgid && (bpf_get_current_pid_tgid() >> 32) != filter_tgid;
}

/* avail: the bytes at ptr (a first iovec's); len: the whole message's. */
static __always_inline int fetch(struct l7_msg *m, u64 ptr, u64 avail, u64 len)
{
    __builtin_memset(m, 0, sizeof(*m));
    m->len = len;
    u32 n = avail < PREFIX ? avail : PREFIX;
    barrier_var(n); /* keeps the mask below, which clang would drop, and the verifier needs */
    return bpf_probe_read_user(m->b, n & 63, (void *)ptr);
}

/* Per-CPU room for what the 512-byte stack cannot hold: a new connection's state, a message's first bytes. */
struct scratch {
    struct conn fresh;
    struct l7_msg m;
    struct lmp_hist zero; /* never written: a new histogram's first value */
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct scratch);
} scratch SEC(".maps");

/* The inet socket behind fd, through the task's file table (CO-RE reads); false for anything else. */
static __always_inline bool inet_socket(struct task_struct *task, s32 fd, struct conn *c)
{
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *f = NULL;
    if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds) || bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
        return false;
    if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
        return false;
    struct socket *sock = BPF_CORE_READ(f, private_data);
    struct sock *sk = BPF_CORE_READ(sock, sk);
    u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
    if (family != 2 && family != 10) /* AF_INET, AF_INET6 */
        return false;
    c->dgram = BPF_CORE_READ(sock, type) == 2; /* SOCK_DGRAM */
    c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
    c->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    return true;
}

/* The connection of (process, fd): found, or made for an inet socket; NULL otherwise.
 *
 * A close does not delete the fd's entry but marks it (a hash delete and the insert that follows when the
 * number is reused cost about 250 ns each, more than everything else a request costs): the next first
 * look at the number finds the entry and fills it in place for the new socket. So a process's entries
 * number at most the most fds it ever had open at once, and the exporter deletes them when it exits. */
static __always_inline struct conn *conn_of(struct task_struct *task, s32 fd)
{
    struct conn_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
    struct conn *c = bpf_map_lookup_elem(&connections, &k);
    if (c && !c->closed)
        return c;
    u8 *other = c ? NULL : bpf_map_lookup_elem(&not_sockets, &k);
    if (other && *other)
        return NULL;
    u32 zero = 0;
    struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
    if (!s)
        return NULL;
    __builtin_memset(&s->fresh, 0, sizeof(s->fresh));
    if (!inet_socket(task, fd, &s->fresh)) {
        u8 one = 1;
        if (other)
            *other = 1;
        else
            bpf_map_update_elem(&not_sockets, &k, &one, BPF_ANY);
        if (c) /* the number is a file now: its entry goes (rare: servers reuse numbers for sockets) */
            bpf_map_delete_elem(&connections, &k);
        return NULL;
    }
    if (c) {
        *c = s->fresh;
        return c;
    }
    if (bpf_map_update_elem(&connections, &k, &s->fresh, BPF_NOEXIST) == -E2BIG)
        LMP_OVERFLOW(connections);
    return bpf_map_lookup_elem(&connections, &k);
}

/* A port as the service label: the first MAX_SERVICES ports seen are themselves, later ones 0 ("other"). */
static __always_inline u16 service(u16 port)
{
    u8 one = 1;
    if (bpf_map_lookup_elem(&services, &port) || !bpf_map_update_elem(&services, &port, &one, BPF_NOEXIST))
        return port;
    return bpf_map_lookup_elem(&services, &port) ? port : 0;
}

static __always_inline u64 cgroup_id(void)
{
    return cgroup ? bpf_get_current_cgroup_id() : 0;
}

/* LMP_OBSERVE, with the new key's zero histogram from the scratch map, not the stack. */
static __always_inline void observe(void *map, struct dur_key *key, u64 value, u64 *overflow)
{
    u32 zero = 0;
    struct lmp_hist *h = bpf_map_lookup_elem(map, key);
    struct scratch *s = h ? NULL : bpf_map_lookup_elem(&scratch, &zero);
    if (s) {
        bpf_map_update_elem(map, key, &s->zero, BPF_NOEXIST);
        h = bpf_map_lookup_elem(map, key);
    }
    if (h)
        lmp_hist_observe(h, value);
    else
        __sync_fetch_and_add(overflow, 1);
}
#define OBSERVE(map, key, value) observe(&map, key, value, &lmp_overflow_##map)

/* Counts the oldest pending request as answered, with the labels in k; false when none is pending. */
static __always_inline bool pop(struct conn *c, struct req_key *k)
{
    struct l7_pending *p = l7_answered(&c->q, c->proto == P_HTTP);
    if (!p)
        return false;
    u64 took = bpf_ktime_get_ns() - p->start;
    k->cgroup = cgroup_id();
    k->service = c->service;
    k->role = c->role;
    struct dur_key d = {.cgroup = k->cgroup, .service = c->service, .role = c->role};
    switch (c->proto) {
    case P_HTTP:
        k->method = p->what;
        LMP_ADD(http_requests_total, k, 1);
        OBSERVE(http_request_duration_seconds, &d, took);
        break;
    case P_DNS:
        k->qtype = p->what;
        LMP_ADD(dns_requests_total, k, 1);
        OBSERVE(dns_request_duration_seconds, &d, took);
        break;
    case P_REDIS:
        __builtin_memcpy(k->command, p->command, 16);
        LMP_ADD(redis_requests_total, k, 1);
        OBSERVE(redis_request_duration_seconds, &d, took);
        break;
    case P_POSTGRES:
        k->method = p->what;
        LMP_ADD(postgres_requests_total, k, 1);
        OBSERVE(postgres_request_duration_seconds, &d, took);
        break;
    }
    return true;
}

/* The parsers below are global functions: the verifier checks each once, on its own, instead of once per
 * path through its caller (and each has its own stack frame). */

__noinline int l7_request(struct conn *c, const struct l7_msg *m, u64 ptr)
{
    char cmd[16] = {};
    bool query;
    int off;
    if (!c || !m)
        return 0;
    switch (c->proto) {
    case P_HTTP:
        if (http_method(m->b))
            l7_push(&c->q, http_method(m->b), NULL);
        break;
    case P_DNS:
        off = dns_header(m, c->dgram, c->expect, &query);
        if (off >= 0 && query)
            l7_push(&c->q, dns_qtype(ptr, off, m->len), NULL);
        break;
    case P_REDIS:
        if (redis_command(m->b, cmd))
            l7_push(&c->q, 0, cmd);
        break;
    case P_POSTGRES:
        /* Q: a simple query; P (Parse) or B (Bind, of a prepared statement): the extended protocol. */
        if (m->b[0] == 'Q' || m->b[0] == 'P' || m->b[0] == 'B')
            l7_push(&c->q, m->b[0] == 'Q' ? 0 : 1, NULL);
        break;
    }
    return 0;
}

__noinline int l7_response(struct conn *c, const struct l7_msg *m, u64 ptr, u64 avail)
{
    struct req_key k = {};
    bool query;
    int off;
    if (!c || !m)
        return 0;
    switch (c->proto) {
    case P_HTTP:
        k.status = http_status(m->b);
        if (k.status >= 200) /* 1xx: an interim answer, the final one follows */
            pop(c, &k);
        break;
    case P_DNS:
        off = dns_header(m, c->dgram, c->expect, &query);
        if (off >= 0 && !query) {
            k.status = m->b[off + 3] & 0xf;
            pop(c, &k);
        }
        break;
    case P_REDIS:
        if (m->b[0] == '+' || m->b[0] == '-' || m->b[0] == ':' || m->b[0] == '$' || m->b[0] == '*' ||
            m->b[0] == '_' || m->b[0] == '%' || m->b[0] == '#' || m->b[0] == ',') {
            k.status = m->b[0] == '-';
            pop(c, &k);
        }
        break;
    case P_POSTGRES:
        if (postgres_answer(ptr, avail, &c->error, c->sqlstate)) {
            k.status = c->error;
            k.sqlstate_class[0] = c->sqlstate[0];
            k.sqlstate_class[1] = c->sqlstate[1];
            c->error = 0;
            c->sqlstate[0] = c->sqlstate[1] = 0;
            pop(c, &k);
        }
        break;
    }
    return 0;
}

static __always_inline void count_connection(u8 protocol, u8 role)
{
    struct proto_key k = {.protocol = protocol, .role = role};
    LMP_ADD(l7_connections_total, &k, 1);
}

/* One message the process sent or received on connection c; how: OUT when it sent it, and the destination
 * port the call named (sendto, sendmsg) shifted by 16 (a BPF function takes five arguments). */
#define OUT 1
static __noinline void message(struct conn *c, u64 ptr, u64 avail, u64 len, u32 how)
{
    bool out = how & OUT;
    u16 to_port = how >> 16;
    u32 zero = 0;
    struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
    if (!s || !c || c->proto == P_UNKNOWN) /* unknown: never parsed again, not even read */
        return;
    struct l7_msg *m = &s->m;
    if (fetch(m, ptr, avail, len))
        return;
    /* A stream's 1- or 2-byte pieces: DNS over TCP's length, read or written on its own (dnsmasq reads it
     * a byte at a time, dig writes it as an iovec of its own). Kept to recognise the message after it. */
    if (!c->dgram && len < 3 && (c->proto == P_NONE || c->proto == P_DNS)) {
        c->expect = c->prefix_bytes ? c->expect << 8 | m->b[0] : (len == 2 ? be16(m->b) : m->b[0]);
        c->prefix_bytes += len;
        return;
    }
    if (c->proto == P_NONE || c->proto == P_TLS) {
        int found = l7_detect(m, c->dgram, c->expect);
        u8 proto = found & 0xff;
        bool req = found & REQUEST;
        if (proto == P_TLS || (proto == P_UNKNOWN && c->proto == P_TLS))
            return c->proto = P_TLS, (void)0;
        c->proto = proto;
        c->role = req == out ? CLIENT : SERVER;
        c->service = service(c->role == SERVER ? c->lport : (c->dport ? c->dport : to_port));
        count_connection(proto, c->role);
        if (proto == P_UNKNOWN)
            return;
    }
    if (out == (c->role == CLIENT))
        l7_request(c, m, ptr);
    else
        l7_response(c, m, ptr, avail);
    c->expect = c->prefix_bytes = 0;
}

/* The destination port of a sockaddr (sin_port and sin6_port both at byte 2), or 0. */
static __always_inline u16 port_of(u64 addr)
{
    u16 port = 0;
    if (addr)
        bpf_probe_read_user(&port, 2, (void *)(addr + 2));
    return bpf_ntohs(port);
}

/* The fd's connection ends: the fd's number may next be another socket, or a file (see conn_of). */
static __always_inline void closed(s32 fd)
{
    struct conn_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
    struct conn *c = bpf_map_lookup_elem(&connections, &k);
    if (c) {
        if (c->proto == P_TLS && !c->closed) /* encrypted all along: no plaintext was seen (no uprobe covered it) */
            count_connection(P_TLS, c->role);
        c->closed = 1;
        return;
    }
    u8 *other = bpf_map_lookup_elem(&not_sockets, &k);
    if (other)
        *other = 0;
}

/* At the exit of a socket call (the tracepoints below): its arguments are still in the registers the kernel
 * saved at its entry (x86_64 passes them in di, si, dx, r10, r8; these calls never change them), so no
 * program runs at the entry. A global function: the verifier checks it once, not once per tracepoint. */
__noinline int l7_exit(long nr, long ret)
{
    struct task_struct *task = bpf_get_current_task_btf();
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
    if (nr == NR_close) { /* whatever it returned, the fd is gone (close(2)) */
        if (!skipped())
            closed(regs->di);
        return 0;
    }
    /* No bytes moved (EAGAIN from a non-blocking read is the common case). */
    if (ret <= 0 || skipped())
        return 0;
    struct conn *c = conn_of(task, regs->di);
    if (!c)
        return 0;
    /* Inside SSL_read or SSL_write (only when the uprobes are attached): what the call moved is ciphertext. */
    struct call *call = tls ? bpf_task_storage_get(&calls, task, 0, 0) : NULL;
    bool out = nr == NR_write || nr == NR_writev || nr == NR_sendto || nr == NR_sendmsg || nr == NR_sendmmsg;
    u64 ptr = regs->si, avail = ret, addr = nr == NR_sendto ? regs->r8 : 0;
    if (call && call->tls) { /* ciphertext under SSL_read or SSL_write: the uprobes pass the plaintext */
        s32 fd = regs->di;
        call->tls_fd = fd;
        bpf_map_update_elem(&ssl_fds, &call->ssl, &fd, BPF_ANY);
        c->tls = 1;
        if (call->tls == TLS_WRITE && call->tls_buf) {
            message(c, call->tls_buf, call->tls_len, call->tls_len, OUT | (u32)port_of(addr) << 16);
            call->tls_buf = 0; /* one message per SSL_write, however many syscalls it takes */
        }
        return 0;
    }
    if (c->tls)
        return 0;
    if (nr == NR_sendmmsg || nr == NR_recvmmsg) { /* glibc's resolver, libuv (dig): ret messages */
        for (int i = 0; i < MMSGS && i < ret; i++) {
            u64 hdr[4], iov[2], at = ptr + i * 64; /* struct mmsghdr: a user_msghdr, then msg_len */
            u32 bytes = 0;
            if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)at) ||
                bpf_probe_read_user(&bytes, sizeof(bytes), (void *)(at + 56)) ||
                bpf_probe_read_user(iov, sizeof(iov), (void *)hdr[2]))
                break;
            message(c, iov[0], iov[1] < bytes ? iov[1] : bytes, bytes, out | (u32)port_of(out ? hdr[0] : 0) << 16);
        }
        return 0;
    }
    u64 iovcnt = regs->dx;
    if (nr == NR_sendmsg || nr == NR_recvmsg) { /* struct user_msghdr: name, namelen, iov, iovlen */
        u64 hdr[4];
        if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)ptr))
            return 0;
        addr = out ? hdr[0] : 0;
        ptr = hdr[2];
        iovcnt = hdr[3];
    }
    u32 how = out | (u32)port_of(addr) << 16;
    if (nr == NR_readv || nr == NR_writev || nr == NR_sendmsg || nr == NR_recvmsg) {
        u64 iov[4] = {}; /* the first two iovecs: base, len */
        if (bpf_probe_read_user(iov, iovcnt > 1 ? 32 : 16, (void *)ptr))
            return 0;
        if (iovcnt > 1 && iov[1] < 3 && ret > iov[1]) { /* a length prefix, then the message */
            message(c, iov[0], iov[1], iov[1], how);
            avail = ret - iov[1];
            message(c, iov[2], iov[3] < avail ? iov[3] : avail, avail, how);
            return 0;
        }
        ptr = iov[0];
        avail = iov[1] < avail ? iov[1] : avail;
    }
    message(c, ptr, avail, ret, how);
    return 0;
}

/* Only the calls that move a socket's bytes, and close, run a program: classic per-syscall tracepoints
 * cost more per call than raw_syscalls (133 against 104 ns for an empty program, docs/performance.md) but
 * nothing at all for the host's other syscalls (epoll, futex, accept4, ...), which raw_syscalls would
 * pass through a program too: a new connection per request makes 7 program runs instead of 20. */
SEC("tp/syscalls/sys_exit_read")
int sys_exit_read(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_write")
int sys_exit_write(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_readv")
int sys_exit_readv(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_writev")
int sys_exit_writev(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_sendto")
int sys_exit_sendto(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_recvfrom")
int sys_exit_recvfrom(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_sendmsg")
int sys_exit_sendmsg(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_recvmsg")
int sys_exit_recvmsg(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_sendmmsg")
int sys_exit_sendmmsg(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_recvmmsg")
int sys_exit_recvmmsg(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }
SEC("tp/syscalls/sys_exit_close")
int sys_exit_close(struct syscall_trace_exit *ctx) { return l7_exit(ctx->nr, ctx->ret); }

/* TLS: SSL_write(ssl, buf, num) and SSL_write_ex(ssl, buf, num, &written), SSL_read(ssl, buf, num) and
 * SSL_read_ex(ssl, buf, num, &readbytes), from OpenSSL's ssl.h. */
static __always_inline int ssl_enter(u8 kind, u64 ssl, u64 buf, u64 len)
{
    if (skipped())
        return 0;
    struct call *c = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (c) {
        c->tls = kind;
        c->ssl = ssl;
        c->tls_buf = buf;
        c->tls_len = len;
        c->tls_fd = -1;
    }
    return 0;
}

/* At SSL_read's return (or SSL_write's, when the library made no syscall in it): the plaintext, on the
 * fd of the call's syscall or else the last one that SSL object used. */
static __always_inline int ssl_exit(s64 n, bool ex)
{
    struct task_struct *task = bpf_get_current_task_btf();
    struct call *call = bpf_task_storage_get(&calls, task, 0, 0);
    if (!call || !call->tls)
        return 0;
    bool out = call->tls == TLS_WRITE;
    call->tls = 0;
    if (out && !call->tls_buf)
        return 0;
    if (out) { /* SSL_write returns the bytes written, SSL_write_ex 1: either way, all of num */
        if (n <= 0)
            return 0;
        n = call->tls_len;
    } else if (ex) {
        u64 bytes = 0;
        if (n != 1 || bpf_probe_read_user(&bytes, sizeof(bytes), (void *)call->tls_len))
            return 0;
        n = bytes;
    }
    s32 *fd = call->tls_fd >= 0 ? &call->tls_fd : bpf_map_lookup_elem(&ssl_fds, &call->ssl);
    if (n <= 0 || !fd)
        return 0;
    struct conn *c = conn_of(task, *fd);
    if (c) {
        c->tls = 1;
        message(c, call->tls_buf, n, n, out);
    }
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_write, void *ssl, void *buf, int num) { return ssl_enter(TLS_WRITE, (u64)ssl, (u64)buf, num); }
SEC("uprobe")
int BPF_KPROBE(ssl_read, void *ssl, void *buf, int num) { return ssl_enter(TLS_READ, (u64)ssl, (u64)buf, 0); }
SEC("uprobe")
int BPF_KPROBE(ssl_write_ex, void *ssl, void *buf, size_t num) { return ssl_enter(TLS_WRITE, (u64)ssl, (u64)buf, num); }
SEC("uprobe")
int BPF_KPROBE(ssl_read_ex, void *ssl, void *buf, size_t num, size_t *readbytes)
{
    return ssl_enter(TLS_READ, (u64)ssl, (u64)buf, (u64)readbytes);
}
SEC("uretprobe")
int BPF_KRETPROBE(ssl_write_ret, int ret) { return ssl_exit(ret, false); }
SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_ret, int ret) { return ssl_exit(ret, false); }
SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_ex_ret, int ret) { return ssl_exit(ret, true); }
