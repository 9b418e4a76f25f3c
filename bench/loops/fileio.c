/* A tight loop of 64-byte write() calls to /dev/null; prints the mean nanoseconds per call.
 * Each call is one event fileio traces (sys_enter_write and sys_exit_write); /dev/null keeps the
 * cost of the write itself small, so what a probe adds stands out. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 1000000;
    char buf[64] = {0};
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0) {
        perror("/dev/null");
        return 1;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < calls; i++)
        if (write(fd, buf, sizeof(buf)) != sizeof(buf))
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / calls);
    return 0;
}
