/* Page faults on fresh anonymous memory: maps a chunk, writes one byte to each of its pages (one user
 * page fault each), unmaps it, and repeats, so memory stays small; prints the mean nanoseconds per fault
 * (the map and unmap calls included, shared by the chunk's faults). The events pagefault traces. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_PAGES 1024 /* 4 MiB a chunk */

int main(int argc, char **argv)
{
    long faults = argc > 1 ? atol(argv[1]) : 200000;
    long page = sysconf(_SC_PAGESIZE);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long done = 0; done < faults; done += CHUNK_PAGES) {
        long pages = faults - done < CHUNK_PAGES ? faults - done : CHUNK_PAGES;
        char *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        madvise(p, pages * page, MADV_NOHUGEPAGE); /* one fault per 4 KiB page, not per huge page */
        for (long i = 0; i < pages; i++)
            p[i * page] = 1;
        munmap(p, pages * page);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / faults);
    return 0;
}
