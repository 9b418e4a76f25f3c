/* scenario core: which threads are followed, where each thread's time goes (on-CPU, blocked by reason,
 * waiting in the run queue), and the process events (exec, fork, exit). Every other family file of
 * scenario/bpf/ is compiled after this one and uses its maps and helpers.
 *
 * A thread is followed when it is in `threads`: user space puts the first ones there (the command it
 * starts, or an attached process's threads), sched_process_fork adds new threads of a followed process
 * and, with -DFOLLOW_CHILDREN=1, new child processes. The thread's last sched_switch (prev_state dead)
 * removes it. Time is accounted exactly, in the kernel, as a state machine per thread:
 *
 *   ON_CPU --switch out, runnable--> PREEMPTED --switch in--> ON_CPU
 *   ON_CPU --switch out, sleeping--> BLOCKED(reason) --wakeup--> WOKEN --switch in--> ON_CPU
 *
 * so that a thread's lifetime is the sum of its time in each state (the breakdown). Individual events go
 * to the ring buffer `events` for the timeline; a full ring buffer loses events (counted in `lost`), never
 * the totals. */

/* Followed threads at once. A hash of this size costs 8192 * ~120 bytes = 1 MB of kernel memory. */
#define MAX_THREADS 8192
/* Distinct (stack, reason) keys of the off-CPU and on-CPU flame graphs. */
#define MAX_STACK_KEYS 16384
/* Stack traces kept (127 frames of 8 bytes each): 8192 of them take 8 MB of kernel memory. */
#define MAX_STACKS 8192
/* The syscall table: x86_64 numbers stay below 512. */
#define MAX_SYSCALLS 512
/* The syscall path's own table of followed threads, direct-mapped by tid: see sys_slots below. */
#define SYS_SLOTS 65536
/* Ring buffer pages (-DRING_PAGES, a power of two; 2048 pages = 8 MB). */
#ifndef RING_PAGES
#define RING_PAGES 2048
#endif

/* Event kinds: the first field of every event (scenario/events.py decodes them). */
#define EV_SYSCALL 1
#define EV_SYSCALL_PATH 2
#define EV_OFFCPU 3
#define EV_FAULT 4
#define EV_BLOCK 5
#define EV_TCP 6
#define EV_SIGNAL 7
#define EV_EXEC 8
#define EV_FORK 9
#define EV_EXIT 10
#define EV_SAMPLE 11
#define EV_UPROBE 12
#define EV_REQUEST 13
#define EV_KINDS 14

/* Thread states and the `totals` slots they are accounted in. */
#define ST_ON_CPU 0
#define ST_SLEEPING 1        /* BLOCKED, interruptible (S, I) */
#define ST_UNINTERRUPTIBLE 2 /* BLOCKED, D: disk I/O, kernel locks */
#define ST_OTHER 3           /* BLOCKED, stopped or traced (T, t) or parked */
#define ST_PREEMPTED 4       /* runnable since it was switched out */
#define ST_RUNQUEUE 5        /* woken, waiting for a CPU */
#define ST_UNKNOWN 6         /* inserted by user space: the first event tells what it was */
#define T_LIFETIME 7         /* totals slot: lifetimes of the threads that ended */
#define T_LAST_END 8         /* totals slot: .ns is when the last followed thread ended */
#define T_SLOTS 9

/* prev_state as sched_switch prints it (TASK_REPORT bits, see exporters/offcpu/offcpu.bpf.c). */
#define TASK_STATE_BITS 0xff
#define STATE_INTERRUPTIBLE 0x01
#define STATE_UNINTERRUPTIBLE 0x02
#define STATE_DEAD 0x30
#define STATE_IDLE 0x80

struct thread {
    u64 since;     /* when the current state began */
    u64 born;      /* start of its accounted lifetime: fork, or when following began */
    u64 sys_enter; /* entry time of the syscall in progress; 0 outside one */
    u64 off_at;    /* switch-out time of the current off-CPU interval */
    u64 woken_at;  /* wake-up time within it; 0 if not woken (preempted) */
    u32 tgid;
    u32 sys_nr;
    u32 state;
    u32 reason;    /* blocked reason; for ST_UNKNOWN, what /proc said when user space inserted it */
    s32 kstack;    /* stacks at the switch out */
    s32 ustack;
    u32 waker;     /* tid of the thread that woke it */
    u32 pad;
};

struct total {
    u64 ns;
    u64 count;
};

struct syscall_total {
    u64 count;
    u64 errors;
    u64 ns;
};

/* The head of every event. */
struct head {
    u64 ts;
    u32 kind;
    u32 tid;
    u32 tgid;
    u32 cpu;
};

struct offcpu_event {
    struct head h;
    u64 off_at;
    u64 woken_at;
    u32 reason;
    u32 waker;
    s32 kstack;
    s32 ustack;
};

struct proc_event {
    struct head h;
    u32 pid;   /* exec: pid; fork: child's tid; exit: exit status (wait(2) encoding) */
    u32 tgid;  /* fork: child's tgid; exit: 1 if the whole process died */
    char name[256]; /* exec: the file name */
};

/* Offsets of kernel struct fields, from the running kernel's BTF (-DBTF_<struct>_<field>). */
#define FIELD(ptr, st, field, dst) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)(ptr) + BTF_##st##_##field)

BPF_HASH(threads, u32, struct thread, MAX_THREADS);

/* Syscalls are the hottest path: two programs per call. A hash lookup in `threads` at each costs more
 * than the rest of the work, so a followed thread also owns the slot tid % SYS_SLOTS of this array,
 * whose lookup the verifier inlines into a few instructions, and keeps its syscall in progress there.
 * Two followed threads whose ids share a slot: the second one uses `threads` (the slow path). A slot
 * is freed at its thread's last switch. 65536 slots of 16 bytes: 1 MB. */
struct sys_slot {
    u32 tid;
    u32 nr;
    u64 enter; /* entry time of the syscall in progress; 0 outside one */
};
BPF_ARRAY(sys_slots, struct sys_slot, SYS_SLOTS);

static __always_inline void claim_slot(u32 tid)
{
    u32 i = tid & (SYS_SLOTS - 1);
    struct sys_slot *s = sys_slots.lookup(&i);
    if (s && s->tid == 0) {
        s->enter = 0;
        s->tid = tid;
    }
}

static __always_inline void release_slot(u32 tid)
{
    u32 i = tid & (SYS_SLOTS - 1);
    struct sys_slot *s = sys_slots.lookup(&i);
    if (s && s->tid == tid)
        s->tid = 0;
}
BPF_PERCPU_ARRAY(totals, struct total, T_SLOTS);
BPF_PERCPU_ARRAY(lost, u64, EV_KINDS);      /* events the full ring buffer could not take, by kind */
BPF_PERCPU_ARRAY(produced, u64, EV_KINDS);  /* events of each kind, kept or lost */
BPF_STACK_TRACE(stacks, MAX_STACKS);
BPF_RINGBUF_OUTPUT(events, RING_PAGES);

struct offcpu_key {
    u32 tgid;
    u32 reason;
    s32 kstack;
    s32 ustack;
};
BPF_HASH(offcpu_stacks, struct offcpu_key, u64, MAX_STACK_KEYS); /* ns off the CPU by stack and reason */

static __always_inline struct thread *followed(void)
{
    u32 tid = bpf_get_current_pid_tgid();
    return threads.lookup(&tid);
}

static __always_inline void count_event(u32 kind)
{
    u64 *n = produced.lookup(&kind);
    if (n)
        (*n)++;
}

static __always_inline void lose(u32 kind)
{
    u64 *n = lost.lookup(&kind);
    if (n)
        (*n)++;
}

/* Reserve an event of `size` bytes in the ring buffer, or count it lost. */
static __always_inline void *reserve(u32 kind, u32 size, u64 now, u32 tid, u32 tgid)
{
    count_event(kind);
    struct head *h = events.ringbuf_reserve(size);
    if (!h) {
        lose(kind);
        return 0;
    }
    h->ts = now;
    h->kind = kind;
    h->tid = tid;
    h->tgid = tgid;
    h->cpu = bpf_get_smp_processor_id();
    return h;
}

/* Events are submitted without waking the reader: it polls every few milliseconds, which costs the
 * traced program nothing, where a wake-up per event would cost an interrupt each. */
static __always_inline void submit(void *e)
{
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline void account(u32 slot, u64 ns)
{
    struct total *t = totals.lookup(&slot);
    if (t) {
        t->ns += ns;
        t->count++;
    }
}
