/* Two processes pass a byte back and forth over pipes; prints the mean nanoseconds per round trip.
 * Each round trip is two wake-ups and at least two context switches: the events runqlat traces. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long trips = argc > 1 ? atol(argv[1]) : 100000;
    int ping[2], pong[2];
    char byte = 0;
    if (pipe(ping) || pipe(pong))
        return 1;
    pid_t child = fork();
    if (child == 0) {
        for (long i = 0; i < trips; i++)
            if (read(ping[0], &byte, 1) != 1 || write(pong[1], &byte, 1) != 1)
                _exit(1);
        _exit(0);
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < trips; i++)
        if (write(ping[1], &byte, 1) != 1 || read(pong[0], &byte, 1) != 1)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &end);
    waitpid(child, NULL, 0);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / trips);
    return 0;
}
