/* connect() to a loopback TCP port that connguard refuses, COUNT times (socket, connect, close); prints
 * the mean nanoseconds per refused connect. Each must fail with EPERM, which is connguard refusing it
 * before any packet is sent; anything else stops the loop. Usage: connect COUNT PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 10000;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons(argc > 2 ? atoi(argv[2]) : 9)};
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < count; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) {
            perror("socket");
            return 1;
        }
        if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) == 0 || errno != EPERM) {
            fprintf(stderr, "connect: expected EPERM, got %s\n", strerror(errno));
            return 1;
        }
        close(s);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / count);
    return 0;
}
