// The floor of a read/write proxy: a byte pipe per client connection to its own upstream
// connection (alternating between the upstreams), epoll edge-triggered, one thread, no parsing.
// A measuring instrument for loadtest/floor.sh, not part of Portico: it assumes small messages
// (a short write drops the pair) and loopback upstreams (the connect completes at once).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define BUF 16384
static int peer[MAXFD];
static char buf[BUF];

static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(0x7f000001);
    int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) { close(fd); return -1; }
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: relay-epoll LISTEN_PORT UP1 UP2\n"); return 2; }
    int lport = atoi(argv[1]), ups[2] = { atoi(argv[2]), atoi(argv[3]) }, next = 0;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(lport) };
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096)) { perror("listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = l };
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                for (;;) {
                    int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) break;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    int u = tcp_connect(ups[next++ & 1]);
                    if (u < 0 || c >= MAXFD || u >= MAXFD) { close(c); if (u >= 0) close(u); continue; }
                    peer[c] = u; peer[u] = c;
                    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET; ev.data.fd = c; epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                    ev.data.fd = u; epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
                }
                continue;
            }
            for (;;) {
                ssize_t r = read(fd, buf, BUF);
                if (r > 0) {
                    ssize_t w = write(peer[fd], buf, r);   // small messages: the whole write fits
                    if (w != r) goto drop;
                    if (r < BUF) break;                     // short read: queue empty, edge re-arms
                    continue;
                }
                if (r < 0 && errno == EAGAIN) break;
            drop:
                { int p = peer[fd]; close(fd); close(p); }
                break;
            }
        }
    }
}
