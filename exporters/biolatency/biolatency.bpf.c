/* biolatency: block I/O latency from the moment a request is issued to the device driver until it
 * completes, by disk and operation, plus requests, bytes and errors.
 *
 * block_rq_issue and block_rq_complete both carry the device number and the start sector, which
 * together name an in-flight request; the issue time waits in `inflight` under that key. Same method
 * as bcc's biolatency -D, on tracepoints instead of kprobes. */
#include "lmp.h"

/* Requests in flight at once across all disks (NVMe queues can hold thousands). Each entry is deleted
 * at completion and overwritten by the next request to the same sector, so lost events cannot pile up. */
#define MAX_INFLIGHT 16384
/* (disk, operation) pairs: 5 operations per disk. */
#define MAX_DISK_OPS 1024

/* Operations, in the order of the spec's `op` label values. */
#define OP_READ 0
#define OP_WRITE 1
#define OP_DISCARD 2
#define OP_FLUSH 3
#define OP_OTHER 4

struct request_key {
    u64 sector;
    u32 dev;
    u32 pad; /* zeroed so that equal requests hash equally */
};

struct request {
    u64 issued_ns;
    u32 bytes;
    u32 op;
};

struct disk_op {
    u32 dev;
    u32 op;
};

BPF_HASH(inflight, struct request_key, struct request, MAX_INFLIGHT);
BPF_PERCPU_HASH(block_io_latency_seconds, struct disk_op, struct lmp_hist, MAX_DISK_OPS);
BPF_PERCPU_HASH(block_io_requests_total, struct disk_op, u64, MAX_DISK_OPS);
BPF_PERCPU_HASH(block_io_bytes_total, struct disk_op, u64, MAX_DISK_OPS);
BPF_PERCPU_HASH(block_io_errors_total, struct disk_op, u64, MAX_DISK_OPS);

/* rwbs is blk_fill_rwbs()'s text: an optional 'F' (preflush) and then the operation: R, W, D, F, N. */
static __always_inline u32 decode_op(const char *rwbs)
{
    char c = rwbs[0];
    if (c == 'F' && (rwbs[1] == 'R' || rwbs[1] == 'W' || rwbs[1] == 'D'))
        c = rwbs[1];
    switch (c) {
    case 'R': return OP_READ;
    case 'W': return OP_WRITE;
    case 'D': return OP_DISCARD;
    case 'F': return OP_FLUSH;
    default:  return OP_OTHER;
    }
}

TRACEPOINT_PROBE(block, block_rq_issue)
{
    struct request_key key = {.sector = args->sector, .dev = args->dev};
    struct request req = {
        .issued_ns = bpf_ktime_get_ns(),
        .bytes = args->bytes,
        .op = decode_op(args->rwbs),
    };
    if (inflight.update(&key, &req))
        LMP_OVERFLOW(inflight);

    struct disk_op dop = {.dev = args->dev, .op = req.op};
    u64 zero = 0;
    u64 *requests = block_io_requests_total.lookup_or_try_init(&dop, &zero);
    if (requests)
        (*requests)++;
    else
        LMP_OVERFLOW(block_io_requests_total);
    u64 *bytes = block_io_bytes_total.lookup_or_try_init(&dop, &zero);
    if (bytes)
        *bytes += req.bytes;
    else
        LMP_OVERFLOW(block_io_bytes_total);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    struct request_key key = {.sector = args->sector, .dev = args->dev};
    struct request *req = inflight.lookup(&key);
    if (!req) /* issued before the exporter started */
        return 0;

    struct disk_op dop = {.dev = args->dev, .op = req->op};
    u64 latency = bpf_ktime_get_ns() - req->issued_ns;
    inflight.delete(&key);

    struct lmp_hist zero = {};
    struct lmp_hist *hist = block_io_latency_seconds.lookup_or_try_init(&dop, &zero);
    if (hist)
        lmp_hist_observe(hist, latency);
    else
        LMP_OVERFLOW(block_io_latency_seconds);
    if (args->error) {
        u64 zero = 0;
        u64 *errors = block_io_errors_total.lookup_or_try_init(&dop, &zero);
        if (errors)
            (*errors)++;
        else
            LMP_OVERFLOW(block_io_errors_total);
    }
    return 0;
}
