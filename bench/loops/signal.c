/* A process sends itself SIGUSR1 and catches it; prints the mean nanoseconds per signal.
 * A signal to oneself is delivered on the way out of kill(), so each iteration is one signal generated
 * and one delivered: the events the signal collector traces. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
    (void)sig;
    caught++;
}

int main(int argc, char **argv)
{
    long signals = argc > 1 ? atol(argv[1]) : 500000;
    struct sigaction action = {.sa_handler = on_signal};
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGUSR1, &action, NULL))
        return 1;
    pid_t self = getpid();
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < signals; i++)
        kill(self, SIGUSR1);
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (caught != (sig_atomic_t)signals)
        return 1;
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / signals);
    return 0;
}
