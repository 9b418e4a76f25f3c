/* UDP datagrams over 127.0.0.1, each received before the next is sent; prints the mean nanoseconds per
 * datagram. On loopback each send raises and runs one NET_RX softirq: the events softirq traces. */
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
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    if (rx < 0 || tx < 0 || bind(rx, (struct sockaddr *)&addr, len) || getsockname(rx, (struct sockaddr *)&addr, &len))
        return 1;
    char byte = 0;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < packets; i++)
        if (sendto(tx, &byte, 1, 0, (struct sockaddr *)&addr, len) != 1 || recv(rx, &byte, 1, 0) != 1)
            return 1;
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / packets);
    return 0;
}
