/* The scenario tests' program with known behaviour (see tests/scenario/test_run.py):
 *   known DIR PORT
 * sleeps 100 ms five times; writes and fsyncs a file in DIR seven times; opens DIR/exists-0..10 (which
 * the test made) and DIR/missing-0..2 (which do not exist); touches 64 new pages (user faults) and
 * reads 16 pages of /dev/zero into a new buffer (kernel faults); spins on the CPU in spin() for 300 ms
 * of its own CPU time; calls work_unit() nine times; connects twice to 127.0.0.1:PORT; forks a child
 * that exits with code 3 and waits for it; sends itself SIGUSR1 once. It prints the nanoseconds from
 * the start of main to its end. Built with frame pointers, so that its own frames appear in user stacks. */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the vDSO: no syscall */
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* a syscall: asked about once a millisecond */
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* 300 ms of this thread's CPU time, however long a loaded machine takes to give it. */
__attribute__((noinline)) void spin(long long ns)
{
    long long end = cpu_ns() + ns;
    volatile unsigned long x = 0;
    while (cpu_ns() < end)
        for (int i = 0; i < 1000000; i++)
            x += i;
}

__attribute__((noinline)) int work_unit(int n)
{
    return getppid() + n; /* one syscall inside the user function */
}

static void on_usr1(int sig) { (void)sig; }

int main(int argc, char **argv)
{
    long long start = now_ns();
    char path[4096];
    if (argc < 3)
        return 2;
    const char *dir = argv[1];
    struct timespec nap = {0, 100 * 1000 * 1000};
    for (int i = 0; i < 5; i++)
        nanosleep(&nap, NULL);

    snprintf(path, sizeof(path), "%s/fsynced", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char block[4096];
    memset(block, 'l', sizeof(block));
    for (int i = 0; i < 7; i++) {
        if (pwrite(fd, block, sizeof(block), 0) != sizeof(block) || fsync(fd) != 0)
            return 3;
    }
    close(fd);

    for (int i = 0; i < 14; i++) {
        snprintf(path, sizeof(path), i < 11 ? "%s/exists-%d" : "%s/missing-%d", dir, i < 11 ? i : i - 11);
        int f = open(path, O_RDONLY);
        if (f >= 0)
            close(f);
    }

    char *pages = mmap(NULL, 80 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 64; i++)
        pages[i * 4096] = 1;
    int zero = open("/dev/zero", O_RDONLY);
    if (read(zero, pages + 64 * 4096, 16 * 4096) != 16 * 4096)
        return 4;
    close(zero);

    spin(300 * 1000 * 1000LL);
    int sum = 0;
    for (int i = 0; i < 9; i++)
        sum += work_unit(i);

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 2; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&to, sizeof(to)) != 0)
            return 5;
        close(s);
    }

    pid_t child = fork();
    if (child == 0)
        _exit(3);
    int status;
    waitpid(child, &status, 0);
    signal(SIGUSR1, on_usr1);
    kill(getpid(), SIGUSR1);

    printf("%lld\n", now_ns() - start);
    return sum == 0; /* never true: keeps work_unit's calls */
}
