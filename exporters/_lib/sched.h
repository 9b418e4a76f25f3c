/* The state a thread leaves the CPU in, as the sched_switch tracepoint reports it (its prev_state field,
 * what ftrace prints as S, D, R+ ...): tp_btf programs get the raw task state and compute the same thing,
 * as __trace_sched_switch_state() does (include/trace/events/sched.h). Shared by runqlat and offcpu. */
#ifndef LMP_SCHED_H
#define LMP_SCHED_H

/* Task state bits (include/linux/sched.h). Not in BTF (they are #defines), but ABI-stable since v4.14;
 * TASK_RTLOCK_WAIT since v5.15, TASK_FROZEN since v6.1. */
#define TASK_RUNNING 0x0
#define TASK_INTERRUPTIBLE 0x1
#define TASK_UNINTERRUPTIBLE 0x2
#define TASK_REPORT 0x7f /* S D T t X Z P */
#define TASK_NOLOAD 0x400
#define TASK_IDLE (TASK_UNINTERRUPTIBLE | TASK_NOLOAD)
#define TASK_RTLOCK_WAIT 0x1000
#define TASK_FROZEN 0x8000
#define TASK_REPORT_IDLE 0x80 /* I */
#define TASK_REPORT_DEAD 0x30 /* X, Z: a thread's last switch out */
#define TASK_REPORT_MAX 0x100 /* a preemption: the thread stays runnable */

/* One bit of TASK_REPORT (or TASK_REPORT_IDLE), TASK_REPORT_MAX for a preemption, 0 for runnable. */
static __always_inline u32 lmp_switch_state(bool preempt, u32 state, u32 exit_state)
{
    if (preempt)
        return TASK_REPORT_MAX;
    u32 bits = (state | exit_state) & TASK_REPORT;
    if ((state & TASK_IDLE) == TASK_IDLE)
        bits = TASK_REPORT_IDLE;
    if (state & (TASK_RTLOCK_WAIT | TASK_FROZEN)) /* reported as uninterruptible, as the kernel does */
        bits = TASK_UNINTERRUPTIBLE;
    return bits ? 1 << lmp_log2(bits) : 0;
}

#endif /* LMP_SCHED_H */
