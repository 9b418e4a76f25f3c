/* UDP datagrams sent to a closed port on 127.0.0.1; prints the mean nanoseconds per datagram.
 * Each one is dropped by the kernel (reason NO_SOCKET): one skb:kfree_skb event, which skbdrop
 * counts. The time includes the whole loopback path and the ICMP port-unreachable reply. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long packets = argc > 1 ? atol(argv[1]) : 100000;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(to);
    /* A port nobody listens on: one the kernel just gave us, released again. */
    int probe = socket(AF_INET, SOCK_DGRAM, 0);
    if (probe < 0 || bind(probe, (struct sockaddr *)&to, len) || getsockname(probe, (struct sockaddr *)&to, &len)) {
        perror("bind");
        return 1;
    }
    close(probe);
    int fd = socket(AF_INET, SOCK_DGRAM, 0); /* unconnected: the ICMP errors do not fail sendto */
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    char payload[16] = "lmp";
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < packets; i++)
        if (sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&to, len) != sizeof(payload))
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / packets);
    return 0;
}
