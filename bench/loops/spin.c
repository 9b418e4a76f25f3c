/* A CPU-bound loop with no syscalls in it: arithmetic on a volatile; prints the mean nanoseconds of CPU
 * time per 1000 iterations. CPU time, not wall-clock time: on a shared 2-CPU VM other work preempting
 * the loop would count as overhead; what a tracer costs a CPU-bound program is the CPU it takes from it
 * (sampling interrupts, its programs at context switches, cache). The benchmark runs it alone and while
 * followed by lmp scenario, perf record, strace. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1000000;
    volatile unsigned long x = 0;
    struct timespec start, end;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < 1000; i++)
            x += i ^ r;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &end);
    double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
    printf("%.1f\n", ns / rounds);
    return 0;
}
