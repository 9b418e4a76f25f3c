/* TCP connections on loopback: connect, accept, close both ends; prints the mean nanoseconds per
 * connection. Each one is about ten TCP state changes (five per end): the events tcp traces.
 * The client closes first, so its end goes to TIME_WAIT; Linux reuses those ports on loopback
 * (net.ipv4.tcp_tw_reuse=2, the default), so a long run does not run out of ephemeral ports. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long connections = argc > 1 ? atol(argv[1]) : 10000;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, len) || listen(listener, 128) ||
        getsockname(listener, (struct sockaddr *)&addr, &len)) { /* port 0: the kernel picks one */
        perror("listener");
        return 1;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < connections; i++) {
        /* On loopback connect() returns with the handshake done and the child in the accept queue. */
        int client = socket(AF_INET, SOCK_STREAM, 0);
        if (client < 0 || connect(client, (struct sockaddr *)&addr, len)) {
            perror("connect");
            return 1;
        }
        int server = accept(listener, NULL, NULL);
        if (server < 0) {
            perror("accept");
            return 1;
        }
        close(client);
        close(server);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    close(listener);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / connections);
    return 0;
}
