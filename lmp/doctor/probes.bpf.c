/* `lmp doctor`'s probes: empty programs it loads and attaches, to learn what this kernel really allows
 * (a kernel's config can say yes where a running system says no). None of them records anything. */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>

BPF_RINGBUF_OUTPUT(doctor_ring, 1); /* a ring buffer map: refused by kernels before 5.8 */

int doctor_kprobe(struct pt_regs *ctx) { return 0; }     /* attached to a kernel function, if kprobes exist */
int doctor_uprobe(struct pt_regs *ctx) { return 0; }     /* attached to libc's getpid */
int doctor_perf(struct bpf_perf_event_data *ctx) { return 0; } /* attached to a software cpu-clock event */
