/* Fork a child that exits at once, and reap it; prints the mean nanoseconds per fork-exit-wait cycle.
 * Each cycle is one fork and one process exit: the events the process collector traces (exec is not
 * in the loop: its own cost, a millisecond, would hide everything else). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long cycles = argc > 1 ? atol(argv[1]) : 2000;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < cycles; i++) {
        pid_t child = fork();
        if (child < 0)
            return 1;
        if (child == 0)
            _exit(i & 0x7f); /* a spread of exit codes, as on a real host */
        if (waitpid(child, NULL, 0) != child)
            return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / cycles);
    return 0;
}
