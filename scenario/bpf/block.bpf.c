/* scenario block (-DBLOCK=1): block I/O requests the followed threads issued, with their latency.
 *
 * block_io_start fires when a request is made from a bio, in the context of the task that submitted
 * it: a read, an O_DIRECT write, the data writeback an fsync starts. That is what "attributable" means
 * here. Pages a process dirtied and that the kernel's flusher threads write back later are submitted
 * by those threads, not by the process, and are not its requests (its fsync's wait for them shows as
 * off-CPU time in D state instead). block_rq_issue (sent to the driver) and block_rq_complete carry the
 * same device and start sector, which name the request in flight. */

#define MAX_REQUESTS 4096

struct request_key {
    u64 sector;
    u32 dev;
    u32 pad;
};

struct request {
    u64 start;   /* block_io_start */
    u64 issue;   /* block_rq_issue: handed to the driver */
    u32 tid;
    u32 tgid;
    u32 bytes;
    char rwbs[8];
    u32 pad;
};

struct block_event {
    struct head h;
    u64 start;
    u64 issue;
    u64 sector;
    u32 dev;
    u32 bytes;
    s32 error;
    char rwbs[8];
    u32 pad;
};

/* [0] requests, [1] bytes, [2] ns from start to completion, then requests by operation: [3] reads,
 * [4] writes, [5] flushes, [6] discards, [7] other */
BPF_PERCPU_ARRAY(block_totals, u64, 8);

/* rwbs is blk_fill_rwbs()'s text: an optional 'F' (preflush) and then the operation: R, W, D, F, N
 * (see exporters/biolatency). A preflush with data counts as its operation. */
static __always_inline u32 block_op(const char *rwbs)
{
    char c = rwbs[0];
    if (c == 'F' && (rwbs[1] == 'R' || rwbs[1] == 'W' || rwbs[1] == 'D'))
        c = rwbs[1];
    switch (c) {
    case 'R': return 3;
    case 'W': return 4;
    case 'F': return 5;
    case 'D': return 6;
    default:  return 7;
    }
}
BPF_HASH(requests, struct request_key, struct request, MAX_REQUESTS);

static __always_inline void add_block(u32 slot, u64 n)
{
    u64 *v = block_totals.lookup(&slot);
    if (v)
        *v += n;
}

TRACEPOINT_PROBE(block, block_io_start)
{
    struct thread *t = followed();
    if (!t)
        return 0;
    struct request_key key = {.sector = args->sector, .dev = args->dev};
    struct request r = {.start = bpf_ktime_get_ns(), .tid = bpf_get_current_pid_tgid(), .tgid = t->tgid,
                        .bytes = args->bytes};
    bpf_probe_read_kernel(r.rwbs, sizeof(r.rwbs), args->rwbs);
    if (requests.update(&key, &r))
        LMP_OVERFLOW(requests);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_issue)
{
    struct request_key key = {.sector = args->sector, .dev = args->dev};
    struct request *r = requests.lookup(&key);
    if (r)
        r->issue = bpf_ktime_get_ns();
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    struct request_key key = {.sector = args->sector, .dev = args->dev};
    struct request *r = requests.lookup(&key);
    if (!r)
        return 0;
    u64 now = bpf_ktime_get_ns();
    add_block(0, 1);
    add_block(1, r->bytes);
    add_block(2, now - r->start);
    add_block(block_op(r->rwbs), 1);
    struct block_event *e = reserve(EV_BLOCK, sizeof(*e), now, r->tid, r->tgid);
    if (e) {
        e->start = r->start;
        e->issue = r->issue;
        e->sector = args->sector;
        e->dev = args->dev;
        e->bytes = r->bytes;
        e->error = args->error;
        __builtin_memcpy(e->rwbs, r->rwbs, sizeof(e->rwbs));
        e->pad = 0;
        submit(e);
    }
    requests.delete(&key);
    return 0;
}
