/* UDP datagrams as fast as one CPU sends them, from a given IPv4 source to a given destination; prints
 * the mean nanoseconds per datagram. Sent over a veth pair into a namespace whose end runs XDP in
 * generic mode, each sendto() also carries its datagram through that XDP program and the receiving
 * stack: the veth queues it on this CPU's backlog, which the kernel processes as the send returns. So the
 * time per datagram includes what the program costs, and a dropped datagram skips the receiving stack.
 * Usage: udpflood COUNT SOURCE DESTINATION PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s COUNT SOURCE DESTINATION PORT\n", argv[0]);
        return 2;
    }
    long count = atol(argv[1]);
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[4]))};
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || inet_pton(AF_INET, argv[2], &src.sin_addr) != 1 || inet_pton(AF_INET, argv[3], &dst.sin_addr) != 1 ||
        bind(s, (struct sockaddr *)&src, sizeof(src)) || connect(s, (struct sockaddr *)&dst, sizeof(dst))) {
        perror("udpflood");
        return 1;
    }
    char payload[18] = "lmp bench datagram";
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < count; i++) {
        if (send(s, payload, sizeof(payload), 0) < 0) {
            perror("send");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / count);
    return 0;
}
