// Linux interfaces Swift's Glibc module does not expose, and a few helpers for things Swift
// cannot express cheaply (relaxed single-writer counters, sockaddr casts).
#ifndef PORTICO_CSYSTEM_H
#define PORTICO_CSYSTEM_H

// No _GNU_SOURCE here: defining it changes system structs (fd_set, __rusage_who) and then
// clang refuses the same header seen differently by this module and Glibc/COpenSSL.
// GNU-only calls are wrapped in shim.c, which defines it for itself.

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <pthread.h>
#include <time.h>

/// A counter written by one thread only and read by others: relaxed load+store, no lock prefix.
static inline void portico_counter_add(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
static inline void portico_counter_set(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t portico_counter_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/// Monotonic clock in nanoseconds.
static inline uint64_t portico_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/// Wall clock seconds since the epoch (for Date headers and logs).
static inline int64_t portico_wall_millis(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t portico_wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}


/// Blocks every signal in the calling thread (threads created afterwards inherit the mask), so
/// that signals are only read through a signalfd.
static inline int portico_block_signals(const int *sigs, int n, sigset_t *out) {
    sigemptyset(out);
    for (int i = 0; i < n; i++) sigaddset(out, sigs[i]);
    return pthread_sigmask(SIG_BLOCK, out, NULL);
}

static inline uint32_t portico_epoll_data_u32(const struct epoll_event *e) { return e->data.u32; }
static inline uint64_t portico_epoll_data_u64(const struct epoll_event *e) { return e->data.u64; }

/// accept4 needs _GNU_SOURCE, which Swift's Glibc import does not define.
int portico_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/// pthread_setname_np is a GNU extension.
int portico_set_thread_name(pthread_t t, const char *name);

#endif
