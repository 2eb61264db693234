// relay-uring.c with multishot receives from a provided-buffer ring: each socket's receive is
// armed once and stays armed (no re-arm per message); a buffer goes back to the ring when the
// send that forwarded it completes.
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define NBUF 4096
#define BUF 4096
#define BGID 1
static int peer[MAXFD];
static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *pool;
enum { ACCEPT = 1, RECV = 2, SEND = 3 };
#define UD(fd, op, bid) (((unsigned long long)(bid) << 40) | ((unsigned long long)(fd) << 8) | (op))

static struct io_uring_sqe *sqe(void) {
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    if (!s) { io_uring_submit(&ring); s = io_uring_get_sqe(&ring); }
    return s;
}
static void recv_on(int fd) {
    struct io_uring_sqe *s = sqe();
    io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
    io_uring_sqe_set_data64(s, UD(fd, RECV, 0));
}
static void give_back(int bid) {
    io_uring_buf_ring_add(br, pool + (size_t)bid * BUF, BUF, bid, io_uring_buf_ring_mask(NBUF), 0);
    io_uring_buf_ring_advance(br, 1);
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
    if (argc < 4) { fprintf(stderr, "usage: relay-uring-ms LISTEN_PORT UP1 UP2\n"); return 2; }
    int lport = atoi(argv[1]), ups[2] = { atoi(argv[2]), atoi(argv[3]) }, next = 0;
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(lport) };
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096)) { perror("listen"); return 1; }
    struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN };
    int rc = io_uring_queue_init_params(4096, &ring, &p);
    if (rc < 0) { fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc)); return 1; }
    br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)br, .ring_entries = NBUF, .bgid = BGID };
    if ((rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) { fprintf(stderr, "buf ring: %s\n", strerror(-rc)); return 1; }
    io_uring_buf_ring_init(br);
    pool = malloc((size_t)NBUF * BUF);
    for (int i = 0; i < NBUF; i++) io_uring_buf_ring_add(br, pool + (size_t)i * BUF, BUF, i, io_uring_buf_ring_mask(NBUF), i);
    io_uring_buf_ring_advance(br, NBUF);
    struct io_uring_sqe *s = sqe();
    io_uring_prep_multishot_accept(s, l, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, UD(l, ACCEPT, 0));
    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe; unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            unsigned long long ud = cqe->user_data;
            int fd = (int)((ud >> 8) & 0xffffffff), op = ud & 0xff, res = cqe->res;
            if (op == ACCEPT) {
                if (res >= 0) {
                    int c = res, u = tcp_connect(ups[next++ & 1]);
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (u < 0 || c >= MAXFD || u >= MAXFD) { close(c); if (u >= 0) close(u); }
                    else { peer[c] = u; peer[u] = c; recv_on(c); recv_on(u); }
                }
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    s = sqe(); io_uring_prep_multishot_accept(s, l, NULL, NULL, 0); io_uring_sqe_set_data64(s, UD(l, ACCEPT, 0));
                }
            } else if (op == RECV) {
                if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
                    int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
                    s = sqe();
                    io_uring_prep_send(s, peer[fd], pool + (size_t)bid * BUF, res, MSG_NOSIGNAL);
                    io_uring_sqe_set_data64(s, UD(fd, SEND, bid));
                    if (!(cqe->flags & IORING_CQE_F_MORE)) recv_on(fd);
                } else if (res == -ENOBUFS) {
                    recv_on(fd);
                } else if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    int pfd = peer[fd];
                    if (pfd > 0) { peer[fd] = -1; peer[pfd] = -1; shutdown(pfd, SHUT_RDWR); }
                    close(fd);
                }
            } else if (op == SEND) {
                give_back((int)(ud >> 40));
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}
