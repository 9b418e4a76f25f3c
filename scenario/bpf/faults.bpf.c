/* scenario faults (-DFAULTS=1): page faults of the followed threads, taken in user mode (the program
 * touched memory) and in kernel mode (the kernel touched user memory for it: copy_to_user and the like).
 * x86's exceptions tracepoints fire on entry to the fault handler with the faulting address, the
 * instruction and the hardware error code (see exporters/pagefault/pagefault.bpf.c). */

#define FAULT_USER 0
#define FAULT_KERNEL 1

struct fault_event {
    struct head h;
    u64 address;
    u64 ip;
    u32 error_code;
    u32 mode;
};

BPF_PERCPU_ARRAY(fault_totals, u64, 2); /* by mode */

static __always_inline int fault(u32 mode, u64 address, u64 ip, u64 error_code)
{
    struct thread *t = followed();
    if (!t)
        return 0;
    u64 *n = fault_totals.lookup(&mode);
    if (n)
        (*n)++;
    struct fault_event *e = reserve(EV_FAULT, sizeof(*e), bpf_ktime_get_ns(), bpf_get_current_pid_tgid(), t->tgid);
    if (e) {
        e->address = address;
        e->ip = ip;
        e->error_code = error_code;
        e->mode = mode;
        submit(e);
    }
    return 0;
}

TRACEPOINT_PROBE(exceptions, page_fault_user)
{
    return fault(FAULT_USER, args->address, args->ip, args->error_code);
}

TRACEPOINT_PROBE(exceptions, page_fault_kernel)
{
    return fault(FAULT_KERNEL, args->address, args->ip, args->error_code);
}
