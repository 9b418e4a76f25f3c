/* O_DIRECT 4 KiB reads of a 1 MiB file in the current directory (it must be on a real disk, not tmpfs);
 * prints the mean nanoseconds per read. Each read is one block request: the events biolatency traces. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define BLOCKS 256

int main(int argc, char **argv)
{
    long reads = argc > 1 ? atol(argv[1]) : 5000;
    const char *path = "lmp-bench-directio.tmp";
    void *buf;
    if (posix_memalign(&buf, BLOCK, BLOCK))
        return 1;
    memset(buf, 'l', BLOCK);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    unlink(path); /* gone when we exit, whatever happens */
    for (int i = 0; i < BLOCKS; i++)
        if (pwrite(fd, buf, BLOCK, (off_t)i * BLOCK) != BLOCK)
            return 1;
    fsync(fd);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < reads; i++)
        if (pread(fd, buf, BLOCK, (off_t)(i % BLOCKS) * BLOCK) != BLOCK)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / reads);
    return 0;
}
