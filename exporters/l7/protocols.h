/* The parsers of the application protocols l7 knows (HTTP/1.x, DNS, Redis, PostgreSQL), shared by the l7
 * collector (l7.bpf.c, libbpf and CO-RE) and the scenario recorder's request spans
 * (scenario/bpf/requests.bpf.c, compiled by BCC): one idea of what a request and a response look like.
 *
 * Pure functions of a message's first bytes (struct l7_msg) or of user memory read with
 * bpf_probe_read_user, and a connection's queue of pending requests: no map, no kernel struct, nothing
 * that differs between libbpf and BCC. The
 * includer provides the kernel's integer types, bool and the helpers. Two macros say how functions are
 * linked: L7_PARSER (l7_detect) a global function and L7_SUBPROG (redis_command) a function of its own for
 * libbpf, so that the verifier checks each once, on its own; BCC, which cannot relocate calls between
 * functions, defines both to inline them. */
#ifndef L7_PROTOCOLS_H
#define L7_PROTOCOLS_H

#ifndef __noinline
#define __noinline __attribute__((__noinline__))
#endif
#ifndef L7_PARSER
#define L7_PARSER __noinline
#endif
#ifndef L7_SUBPROG
#define L7_SUBPROG __noinline
#endif

/* Protocols, in the order of the spec's `protocol` values. */
enum { P_NONE, P_HTTP, P_DNS, P_REDIS, P_POSTGRES, P_TLS, P_UNKNOWN, P_NOT_SOCKET };
enum { CLIENT, SERVER };

/* A connection's requests sent or received and not yet answered: a response answers the oldest. */
#define L7_PENDING 8 /* pipelined requests remembered (HTTP/1.1, Redis); a power of two */
struct l7_pending {
    u64 start;
    union {
        char command[16]; /* Redis */
        u64 what;         /* HTTP method, DNS query type, PostgreSQL query kind */
    };
};
struct l7_queue {
    struct l7_pending ring[L7_PENDING]; /* oldest at head */
    struct l7_pending last;             /* HTTP: the last one pushed, for responses to pipelined ones */
    u32 head, tail;
};

static __always_inline void l7_push(struct l7_queue *q, u64 what, const char *command)
{
    if (q->tail - q->head >= L7_PENDING) /* more in flight than remembered: the oldest is dropped */
        q->head++;
    struct l7_pending *p = &q->ring[q->tail & (L7_PENDING - 1)];
    p->start = bpf_ktime_get_ns();
    p->what = what;
    if (command)
        __builtin_memcpy(p->command, command, 16);
    q->last = *p;
    q->tail++;
}

/* The request a response answers: the oldest pending; or, for HTTP with none left, the last one pushed
 * (a request pipelined in the same read as it, which the parser did not see: it reads the first bytes
 * only, and the response is counted with that one's method and start); NULL when there is none. */
static __always_inline struct l7_pending *l7_answered(struct l7_queue *q, bool http)
{
    if (q->tail != q->head)
        return &q->ring[q->head++ & (L7_PENDING - 1)];
    return http && q->last.start ? &q->last : NULL;
}

/* A message's first bytes, zero past its end. */
struct l7_msg {
    u8 b[64];   /* the bytes read (l7.bpf.c's PREFIX), with room for the verifier's bound (n & 63) */
    u64 len;    /* the whole message's */
};

static __always_inline u32 be32(const u8 *b) { return (u32)b[0] << 24 | (u32)b[1] << 16 | (u32)b[2] << 8 | b[3]; }
static __always_inline u16 be16(const u8 *b) { return (u16)b[0] << 8 | b[1]; }
static __always_inline bool digit(u8 c) { return c >= '0' && c <= '9'; }

/* HTTP methods, in the order of the spec's `method` values (0: other). */
static __always_inline u8 http_method(const u8 *b)
{
    u32 w = b[0] | b[1] << 8 | b[2] << 16 | (u32)b[3] << 24;
    switch (w) {
    case 'G' | 'E' << 8 | 'T' << 16 | (u32)' ' << 24: return 1;
    case 'P' | 'O' << 8 | 'S' << 16 | (u32)'T' << 24: return b[4] == ' ' ? 2 : 0;
    case 'P' | 'U' << 8 | 'T' << 16 | (u32)' ' << 24: return 3;
    case 'H' | 'E' << 8 | 'A' << 16 | (u32)'D' << 24: return b[4] == ' ' ? 4 : 0;
    case 'D' | 'E' << 8 | 'L' << 16 | (u32)'E' << 24: return b[6] == ' ' ? 5 : 0;
    case 'P' | 'A' << 8 | 'T' << 16 | (u32)'C' << 24: return b[5] == ' ' ? 6 : 0;
    case 'O' | 'P' << 8 | 'T' << 16 | (u32)'I' << 24: return b[7] == ' ' ? 7 : 0;
    case 'C' | 'O' << 8 | 'N' << 16 | (u32)'N' << 24: return b[7] == ' ' ? 8 : 0;
    case 'T' | 'R' << 8 | 'A' << 16 | (u32)'C' << 24: return b[5] == ' ' ? 9 : 0;
    }
    return 0;
}

/* "HTTP/1.x NNN": the status code, or 0. */
static __always_inline u16 http_status(const u8 *b)
{
    if (b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' || b[4] != '/' || b[5] != '1' || b[6] != '.' ||
        b[8] != ' ' || !digit(b[9]) || !digit(b[10]) || !digit(b[11]))
        return 0;
    return (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
}

/* The DNS header's offset in the message: 0 over UDP, 2 over TCP (after the length), or -1 if it is none.
 * A query asks one question with no answer; a response repeats the one question. */
static __always_inline int dns_header(const struct l7_msg *m, bool dgram, u16 expect, bool *query)
{
    u32 off = dgram || (expect && m->len == expect) ? 0 : 2; /* the length came in a read or iovec of its own */
    if (off == 2 && be16(m->b) + 2 != m->len)
        return -1;
    if (m->len < off + 12)
        return -1;
    const u8 *h = m->b + off;
    u16 flags = be16(h + 2);
    if ((flags >> 11 & 0xf) != 0 || be16(h + 4) != 1)
        return -1;
    *query = !(flags >> 15);
    if (*query && (be16(h + 6) != 0 || be16(h + 8) != 0))
        return -1;
    return off;
}

/* The query type, compacted to the spec's `qtype` values: walks the question's name (labels of at most
 * 63 bytes) in user memory. */
static __always_inline u16 dns_qtype(u64 ptr, u32 off, u64 len)
{
    u32 at = off + 12;
    for (int i = 0; i < 16; i++) {
        u8 n = 0;
        if (at >= len || bpf_probe_read_user(&n, 1, (void *)(ptr + at)))
            return 0;
        at += 1 + n;
        if (n == 0)
            break;
    }
    u8 t[2];
    if (at + 2 > len || bpf_probe_read_user(t, 2, (void *)(ptr + at)))
        return 0;
    switch (be16(t)) {
    case 1: return 1;    /* A */
    case 2: return 2;    /* NS */
    case 5: return 3;    /* CNAME */
    case 6: return 4;    /* SOA */
    case 12: return 5;   /* PTR */
    case 15: return 6;   /* MX */
    case 16: return 7;   /* TXT */
    case 28: return 8;   /* AAAA */
    case 33: return 9;   /* SRV */
    case 65: return 10;  /* HTTPS */
    case 255: return 11; /* ANY */
    }
    return 0;
}

/* A RESP command, "*N\r\n$L\r\nNAME\r\n...": NAME's first 15 letters, upper-cased, into cmd; false if not.
 * Each part in its own short loop: the verifier follows a few paths, not one per byte. */
static L7_SUBPROG bool redis_command(const u8 *b, char *cmd)
{
    if (b[0] != '*' || !digit(b[1]))
        return false;
    u32 i = 2;
    for (int k = 0; k < 3 && digit(b[i]); k++)
        i++;
    if (b[i] != '\r' || b[i + 1] != '\n' || b[i + 2] != '$' || !digit(b[i + 3]))
        return false;
    i += 4;
    for (int k = 0; k < 3 && digit(b[i]); k++)
        i++;
    if (b[i] != '\r' || b[i + 1] != '\n')
        return false;
    i += 2;
    for (int k = 0; k < 15; k++) {
        u8 c = b[i + k];
        if (c >= 'a' && c <= 'z')
            c -= 'a' - 'A';
        if ((c < 'A' || c > 'Z') && c != '_')
            break;
        cmd[k] = c;
    }
    return cmd[0] != 0;
}

/* PostgreSQL: a startup or SSL request (length, then version 3.0 or the SSL/GSS codes), or a Query
 * message that fills the write. */
static __always_inline bool postgres_start(const struct l7_msg *m)
{
    u32 code = be32(m->b + 4);
    if (be32(m->b) == m->len && (code == 0x30000 || code == 80877103 || code == 80877104))
        return true;
    return m->b[0] == 'Q' && be32(m->b + 1) + 1 == m->len;
}


/* PostgreSQL's answer: ErrorResponse among its first messages (its SQLSTATE's class kept in
 * *error and sqlstate), and whether it
 * ends with ReadyForQuery ('Z', length 5, status), the end of every query's answer. */
static __always_inline bool postgres_answer(u64 ptr, u64 len, u8 *error, char *sqlstate)
{
    u64 at = 0;
    u8 h[5];
    for (int i = 0; i < 4 && at + 5 <= len; i++) {
        if (bpf_probe_read_user(h, 5, (void *)(ptr + at)))
            break;
        if (h[0] == 'E' && !*error) {
            u8 f[32] = {};
            *error = 1;
            bpf_probe_read_user(f, sizeof(f), (void *)(ptr + at + 5));
            for (int j = 0; j < 29; j++) /* fields: a type byte, then a NUL-terminated string; C is the code */
                if (f[j] == 'C' && (j == 0 || f[j - 1] == 0)) {
                    sqlstate[0] = f[j + 1];
                    sqlstate[1] = f[j + 2];
                    break;
                }
        }
        at += 1 + (u64)be32(h + 1);
    }
    u8 z[6];
    return len >= 6 && !bpf_probe_read_user(z, 6, (void *)(ptr + len - 6)) && z[0] == 'Z' && be32(z + 1) == 5;
}

/* What its first message says the connection is: its protocol, with REQUEST when it was a request. */
#define REQUEST 0x100
L7_PARSER int l7_detect(const struct l7_msg *m, bool dgram, u16 expect)
{
    bool query;
    if (!m)
        return P_UNKNOWN | REQUEST;
    if (http_method(m->b))
        return P_HTTP | REQUEST;
    if (http_status(m->b))
        return P_HTTP;
    if (dns_header(m, dgram, expect, &query) >= 0)
        return P_DNS | (query ? REQUEST : 0);
    if (dgram)
        return P_UNKNOWN | REQUEST; /* unknown: whoever speaks first is taken for the client */
    char cmd[16] = {};
    if (redis_command(m->b, cmd))
        return P_REDIS | REQUEST;
    if (postgres_start(m))
        return P_POSTGRES | REQUEST;
    if (m->b[0] == 0x16 && m->b[1] == 3 && m->b[2] <= 4) /* a TLS handshake record */
        return P_TLS | REQUEST;
    return P_UNKNOWN | REQUEST;
}

#endif
