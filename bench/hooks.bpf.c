/* The benchmark's empty programs, one per hook type: what a hook costs before any work is done in it.
 * The bench attaches them where it measures (a tp_btf one gets its target set before it loads). */
#include "lmp.h"

SEC("tp")
int empty_tp(void *ctx) { return 0; }

SEC("raw_tp")
int empty_raw_tp(void *ctx) { return 0; }

SEC("tp_btf")
int empty_tp_btf(void *ctx) { return 0; }

/* The function components' floors: an XDP program that passes every packet, a connect hook that allows
 * every connection. */
SEC("xdp")
int empty_xdp(struct xdp_md *ctx) { return XDP_PASS; }

SEC("cgroup/connect4")
int empty_connect(struct bpf_sock_addr *ctx) { return 1; }
