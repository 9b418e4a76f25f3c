/* `lmp doctor`'s probes: empty programs it loads and attaches one at a time, to learn what this kernel
 * really allows (a kernel's config can say yes where a running system says no). None of them records
 * anything; each is detached at once. */
#include "lmp.h"

SEC("tp/raw_syscalls/sys_exit")
int doctor_tp(void *ctx) { return 0; }

SEC("raw_tp/sys_exit")
int doctor_raw_tp(void *ctx) { return 0; }

SEC("tp_btf/sys_exit") /* BTF tracepoints: what most collectors attach as */
int BPF_PROG(doctor_tp_btf, struct pt_regs *regs, long ret) { return 0; }

SEC("kprobe/do_sys_openat2") /* on a kernel function, if the kernel has kprobes */
int doctor_kprobe(void *ctx) { return 0; }

SEC("uprobe") /* attached by the doctor to libc's getpid */
int doctor_uprobe(void *ctx) { return 0; }

SEC("perf_event") /* attached to a software cpu-clock event */
int doctor_perf(void *ctx) { return 0; }

SEC("fentry/do_sys_openat2") /* a kernel function's entry, through BTF: refused by some kernels' policies */
int BPF_PROG(doctor_fentry) { return 0; }
