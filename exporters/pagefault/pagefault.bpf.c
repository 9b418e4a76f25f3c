/* pagefault: page faults taken in user mode and in kernel mode, by what the access was (read, write,
 * instruction fetch), why it faulted (page not present, or present but the access not allowed) and,
 * by default, the cgroup of the faulting task.
 *
 * The x86 tracepoints exceptions:page_fault_user and page_fault_kernel fire on entry to every page-fault
 * exception (arch/x86/mm/fault.c, handle_page_fault()), before it is handled, with the hardware error
 * code; which one fires depends on the CPU mode at the fault. A fault taken in kernel mode is mostly the
 * kernel touching user memory on a task's behalf: copy_to_user() into a buffer not yet backed by a page.
 * tp_btf programs: the error code is the tracepoint's third argument, read with no record copied. */
#include "lmp.h"

/* (cgroup, mode, access, cause) tuples: 12 per cgroup at most, 6 or fewer in practice. */
#define MAX_KEYS 8192

/* Options (the spec's), set by the exporter before the programs load. */
const volatile bool cgroup = false;

/* Bits of the x86 page-fault error code (arch/x86/include/asm/trap_pf.h, enum x86_pf_error_code). */
#define PF_PROT (1 << 0)  /* 0: the page was not present; 1: present, access not allowed */
#define PF_WRITE (1 << 1) /* the access was a write */
#define PF_INSTR (1 << 4) /* the access was an instruction fetch */

/* Label values, in the order of the spec's enum values. */
#define MODE_USER 0
#define MODE_KERNEL 1
#define ACCESS_READ 0
#define ACCESS_WRITE 1
#define ACCESS_EXEC 2
#define CAUSE_NOT_PRESENT 0
#define CAUSE_PROTECTION 1

struct fault_key {
    u64 cgroup; /* 0 unless the cgroup option is on */
    u8 mode;
    u8 access;
    u8 cause;
    u8 pad[5]; /* zeroed so that equal keys hash equally */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, MAX_KEYS);
    __type(key, struct fault_key);
    __type(value, u64);
} page_faults_total SEC(".maps");
LMP_OVERFLOW_COUNTER(page_faults_total);

static __always_inline int count(u8 mode, u64 error_code)
{
    struct fault_key key = {};
    key.mode = mode;
    key.access = (error_code & PF_INSTR) ? ACCESS_EXEC : (error_code & PF_WRITE) ? ACCESS_WRITE : ACCESS_READ;
    key.cause = (error_code & PF_PROT) ? CAUSE_PROTECTION : CAUSE_NOT_PRESENT;
    key.cgroup = cgroup ? bpf_get_current_cgroup_id() : 0;
    LMP_ADD(page_faults_total, &key, 1);
    return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(page_fault_user, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
    return count(MODE_USER, error_code);
}

SEC("tp_btf/page_fault_kernel")
int BPF_PROG(page_fault_kernel, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
    return count(MODE_KERNEL, error_code);
}
