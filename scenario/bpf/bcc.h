/* What the scenario recorder's programs share, for BCC, which compiles them at each run (the collectors'
 * lmp.h is for libbpf and CO-RE). The loader puts it in front of them: BCC rewrites map calls only in the
 * text it compiles.
 *
 * Every map has a fixed size. When an insert fails because a map is full, the event is counted here, at
 * the map's index (LMP_MAP_<name>, given by the loader as -D flags), and reported as lost. */
#include <uapi/linux/ptrace.h>

#ifndef LMP_MAX_MAPS
#define LMP_MAX_MAPS 1
#endif
BPF_PERCPU_ARRAY(lmp_overflow, u64, LMP_MAX_MAPS);

static __always_inline void lmp_count_overflow(u32 index)
{
    u64 *n = lmp_overflow.lookup(&index);
    if (n)
        (*n)++;
}
/* BCC does not rewrite map calls inside macros: a map's own calls are written out in full. */
#define LMP_OVERFLOW(map) lmp_count_overflow(LMP_MAP_##map)
