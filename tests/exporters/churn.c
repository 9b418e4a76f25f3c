/* The churn test's workload (tests/exporters/test_identity.py):
 *   churn DIR JOBS SECONDS PAGES SENDS
 * makes JOBS short-lived cgroups DIR/job-0 .. DIR/job-(JOBS-1), spread evenly over SECONDS. Each gets one
 * process, cloned straight into it (clone3 CLONE_INTO_CGROUP: every event of the process is its cgroup's,
 * from its first instruction), that touches PAGES new anonymous pages (page faults), sends itself SIGWINCH
 * SENDS times with the kill syscall (ignored by default, and rare on a host), and exits. Its cgroup is
 * removed once it is reaped. For each job it prints "I FAULTS": the page faults the kernel accounted to
 * the process (wait4's rusage, minor + major); it exits non-zero at the first job that went wrong.
 * A C program, because Python makes a few hundred cgroups with a process each a second, not the 50 a
 * second the test needs on a busy 2-CPU machine. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The child: raw syscalls only, so that nothing of libc's state after a raw clone is relied on. */
static void job(long pages, long sends)
{
    long page = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        syscall(SYS_exit_group, 2);
    for (long i = 0; i < pages; i++)
        mem[i * page] = 1;
    long pid = syscall(SYS_getpid);
    for (long i = 0; i < sends; i++)
        syscall(SYS_kill, pid, SIGWINCH);
    syscall(SYS_exit_group, 0);
}

static int run(const char *dir, long i, long pages, long sends)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/job-%ld", dir, i);
    if (mkdir(path, 0755) != 0) {
        fprintf(stderr, "churn: mkdir %s: %s\n", path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)fd};
    long pid = fd < 0 ? -1 : syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0)
        job(pages, sends);
    if (fd >= 0)
        close(fd);
    int status = 0;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "churn: job %ld failed: %s, status %#x\n", i, strerror(errno), status);
        rmdir(path);
        return -1;
    }
    for (int tries = 0; rmdir(path) != 0; tries++) { /* the reaped process may leave it a moment later */
        if (errno != EBUSY || tries == 1000) {
            fprintf(stderr, "churn: rmdir %s: %s\n", path, strerror(errno));
            return -1;
        }
        usleep(1000);
    }
    printf("%ld %ld\n", i, ru.ru_minflt + ru.ru_majflt);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: churn DIR JOBS SECONDS PAGES SENDS\n");
        return 64;
    }
    long jobs = atol(argv[2]), pages = atol(argv[4]), sends = atol(argv[5]);
    double seconds = atof(argv[3]), start = now();
    for (long i = 0; i < jobs; i++) {
        double at = start + seconds * i / jobs, wait = at - now();
        if (wait > 0)
            usleep((useconds_t)(wait * 1e6));
        if (run(argv[1], i, pages, sends) != 0)
            return 1;
    }
    return 0;
}
