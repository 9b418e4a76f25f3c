/* The floor: a program that does nothing. The benchmark attaches it to each tracepoint a collector
 * uses, so the difference between the two is what the collector's own work costs. */
int empty(void *ctx)
{
    return 0;
}

/* The same for raw tracepoints: BCC loads a function as one program type only. */
int empty_raw(void *ctx)
{
    return 0;
}

/* The floor for function components: an XDP program that passes every packet, and a cgroup connect4
 * program that allows every connect(). */
int empty_xdp(struct xdp_md *ctx)
{
    return 2; /* XDP_PASS */
}

int empty_connect(struct bpf_sock_addr *ctx)
{
    return 1;
}
