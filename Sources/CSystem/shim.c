#define _GNU_SOURCE
#include "CSystem.h"

int portico_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return accept4(fd, addr, len, flags);
}

int portico_set_thread_name(pthread_t t, const char *name) {
    return pthread_setname_np(t, name);
}
