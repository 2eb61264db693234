// The same byte pipe as relay-epoll.c over io_uring: one recv outstanding per socket; a
// completed recv is sent to the peer with a send linked to the next recv on the same socket
// (the send's CQE skipped), so one io_uring_enter submits and reaps a whole batch.
// A measuring instrument for loadtest/floor.sh, not part of Portico.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define BUF 16384
static int peer[MAXFD];
static char *bufs[MAXFD];
static struct io_uring ring;
enum { ACCEPT = 1, RECV = 2 };
#define UD(fd, op) (((unsigned long long)(fd) << 8) | (op))

static struct io_uring_sqe *sqe(void) {
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    if (!s) { io_uring_submit(&ring); s = io_uring_get_sqe(&ring); }
    return s;
}
static void recv_on(int fd) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_recv(s, fd, bufs[fd], BUF, 0);
    io_uring_sqe_set_data64(s, UD(fd, RECV));
}
static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(0x7f000001);
    int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: relay-uring LISTEN_PORT UP1 UP2\n"); return 2; }
    int lport = atoi(argv[1]), ups[2] = { atoi(argv[2]), atoi(argv[3]) }, next = 0;
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(lport) };
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096)) { perror("listen"); return 1; }
    struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN };
    int rc = io_uring_queue_init_params(4096, &ring, &p);
    if (rc < 0) { fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc)); return 1; }
    struct io_uring_sqe *s = sqe();
    io_uring_prep_multishot_accept(s, l, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, UD(l, ACCEPT));
    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe; unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            unsigned long long ud = cqe->user_data; int fd = (int)(ud >> 8), op = ud & 0xff, res = cqe->res;
            if (op == ACCEPT) {
                if (res >= 0) {
                    int c = res, u = tcp_connect(ups[next++ & 1]);
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (u < 0 || c >= MAXFD || u >= MAXFD) { close(c); if (u >= 0) close(u); }
                    else {
                        peer[c] = u; peer[u] = c;
                        if (!bufs[c]) bufs[c] = malloc(BUF);
                        if (!bufs[u]) bufs[u] = malloc(BUF);
                        recv_on(c); recv_on(u);
                    }
                }
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    s = sqe(); io_uring_prep_multishot_accept(s, l, NULL, NULL, 0); io_uring_sqe_set_data64(s, UD(l, ACCEPT));
                }
            } else if (op == RECV) {
                if (res <= 0) {
                    // EOF or error (or a failed linked send): close both once.
                    int pfd = peer[fd];
                    if (pfd >= 0) { peer[fd] = -1; peer[pfd] = -1; shutdown(pfd, SHUT_RDWR); }
                    close(fd);
                    continue;
                }
                s = sqe();
                io_uring_prep_send(s, peer[fd], bufs[fd], res, MSG_NOSIGNAL);
                s->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
                io_uring_sqe_set_data64(s, UD(fd, RECV) | 0x80);
                recv_on(fd);
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}
