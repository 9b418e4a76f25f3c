/* biolatency: block I/O latency from the moment a request is issued to the device driver until it
 * completes, by disk and operation, with its requests, bytes and errors.
 *
 * block_rq_issue and block_rq_complete (tp_btf) pass the request itself. Its address names it while it
 * is in flight: the issue time, disk, operation and size wait in `inflight` under it, one hash update per
 * request. At completion one lookup finds them, and one more finds the (disk, operation) statistics that
 * the latency histogram and the three counters share. Same method as bcc's biolatency -D. */
#include "lmp.h"

/* Requests in flight at once across all disks (NVMe queues can hold thousands). Each entry is deleted at
 * completion, and a request's address is reused for later requests, so missed ones cannot pile up. */
#define MAX_INFLIGHT 16384
/* (disk, operation) pairs: 5 operations per disk. */
#define MAX_DISK_OPS 1024

/* The operation is the low byte of a request's flags (REQ_OP_BITS, include/linux/blk_types.h). */
#define REQ_OP_MASK 0xff

/* Operations, in the order of the spec's `op` label values. */
#define OP_READ 0
#define OP_WRITE 1
#define OP_DISCARD 2
#define OP_FLUSH 3
#define OP_OTHER 4

struct request_info {
    u64 issued_ns;
    u32 dev; /* the disk's dev_t as the block tracepoints give it: major << 20 | minor */
    u32 op;
    u64 bytes;
};

struct disk_op {
    u32 dev;
    u32 op;
};

/* One map feeds the four metrics (each reads its field: the spec's `value:`). */
struct io_stats {
    struct lmp_hist latency;
    u64 requests;
    u64 bytes;
    u64 errors;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_INFLIGHT);
    __type(key, u64); /* the request's address */
    __type(value, struct request_info);
} inflight SEC(".maps");
LMP_OVERFLOW_COUNTER(inflight);

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_DISK_OPS);
    __type(key, struct disk_op);
    __type(value, struct io_stats);
} block_io SEC(".maps");
LMP_OVERFLOW_COUNTER(block_io);

/* What blk_fill_rwbs() prints for the request (R, W, D, F, with F in front for a preflush), as a label. */
static __always_inline u32 op_of(struct request *rq)
{
    u32 flags = rq->cmd_flags;
    switch (flags & REQ_OP_MASK) {
    case REQ_OP_READ:         return OP_READ;
    case REQ_OP_WRITE:        return OP_WRITE;
    case REQ_OP_DISCARD:
    case REQ_OP_SECURE_ERASE: return OP_DISCARD;
    case REQ_OP_FLUSH:        return OP_FLUSH;
    }
    /* The flag's bit moves between kernels: CO-RE reads it from the running kernel's enum. */
    if (flags & (1U << bpf_core_enum_value(enum req_flag_bits, __REQ_PREFLUSH)))
        return OP_FLUSH;
    return OP_OTHER;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(block_rq_issue, struct request *rq)
{
    struct gendisk *disk = rq->q->disk;
    u64 key = (u64)rq;
    struct request_info info = {
        .issued_ns = bpf_ktime_get_ns(),
        .dev = disk ? (u32)disk->major << 20 | disk->first_minor : 0,
        .op = op_of(rq),
        .bytes = rq->__data_len,
    };
    if (bpf_map_update_elem(&inflight, &key, &info, BPF_ANY))
        LMP_OVERFLOW(inflight);
    return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
    u64 key = (u64)rq;
    struct request_info *info = bpf_map_lookup_elem(&inflight, &key);
    if (!info) /* issued before the exporter started, or completed in parts: counted at the first */
        return 0;
    struct disk_op dop = {.dev = info->dev, .op = info->op};
    u64 latency = bpf_ktime_get_ns() - info->issued_ns, bytes = info->bytes;
    bpf_map_delete_elem(&inflight, &key);

    struct io_stats *stats = LMP_LOOKUP_OR_ZERO(block_io, &dop);
    if (!stats) {
        LMP_OVERFLOW(block_io);
        return 0;
    }
    lmp_hist_observe(&stats->latency, latency);
    stats->requests++;
    stats->bytes += bytes;
    if (error)
        stats->errors++;
    return 0;
}
