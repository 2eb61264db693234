// Linux interfaces Swift's Glibc module does not expose, and a few helpers for things Swift
// cannot express cheaply (relaxed single-writer counters, sockaddr casts).
#ifndef PORTICO_CSYSTEM_H
#define PORTICO_CSYSTEM_H

// No _GNU_SOURCE here: defining it changes system structs (fd_set, __rusage_who) and then
// clang refuses the same header seen differently by this module and Glibc/COpenSSL.
// GNU-only calls are wrapped in shim.c, which defines it for itself.

#include <stdint.h>
#include <sys/types.h>
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
#include <malloc.h>

/// A counter written by one thread only and read by others: relaxed load+store, no lock prefix.
static inline void portico_counter_add(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
static inline void portico_counter_set(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t portico_counter_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/// Returns freed heap pages to the kernel (glibc).
static inline int portico_malloc_trim(void) { return malloc_trim(0); }

/// Bytes the program holds from malloc (glibc mallinfo2: in-use arena chunks plus mmapped
/// blocks), all threads: unlike RSS it does not count pages freed but not yet returned. It
/// locks and walks each arena in turn: for scrapes, never the request path.
static inline uint64_t portico_heap_bytes(void) {
    struct mallinfo2 m = mallinfo2();
    return (uint64_t)m.uordblks + (uint64_t)m.hblkhd;
}

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

/// One bind mount of a container: `source` (a volume's directory or file) at `target`.
struct portico_bind {
    const char *source;
    const char *target;
    int read_only;
};

/// The step of `portico_spawn_in_mount_namespace` that failed.
enum {
    PORTICO_SPAWN_OK = 0,
    PORTICO_SPAWN_FORK = 1,
    PORTICO_SPAWN_SETPGID = 2,
    PORTICO_SPAWN_UNSHARE = 3,
    PORTICO_SPAWN_USERNS = 4,
    PORTICO_SPAWN_PRIVATE = 5,
    PORTICO_SPAWN_BIND = 6,
    PORTICO_SPAWN_READONLY = 7,
    PORTICO_SPAWN_CHDIR = 8,
    PORTICO_SPAWN_STDIO = 9,
    PORTICO_SPAWN_EXEC = 10,
    PORTICO_SPAWN_SETNS = 11,
};

/// Forks a child that resets its signals, leads its own process group, enters a private mount
/// namespace (unshare(CLONE_NEWNS), else a user namespace that owns one), bind-mounts `binds`
/// (read-only remounts where asked), chdirs to `work_dir`, sends stdin to /dev/null and
/// stdout+stderr to `log_path` (appended), closes other descriptors and execs `file` (searched on
/// `search_path` when it has no slash). Only async-signal-safe calls run in the child; a failure
/// there comes back through a close-on-exec pipe. With `join_pid` > 0 the child joins that
/// process's mount namespace instead (setns; `binds` unused). Returns the pid (the exec'd
/// process), or -1 with the failed stage, its errno and the index of the bind involved (-1 if none).
pid_t portico_spawn_in_mount_namespace(const char *file, char *const argv[], char *const envp[],
                                       const char *search_path, const char *log_path, const char *work_dir,
                                       const struct portico_bind *binds, int nbinds, pid_t join_pid,
                                       int *err_stage, int *err_errno, int *err_index);

/// mount -t tmpfs (nosuid, nodev) with `options` such as "size=1048576,mode=0777".
int portico_mount_tmpfs(const char *target, const char *options);

/// umount2(target, MNT_DETACH).
int portico_unmount_detach(const char *target);

/// For tests: removes capability `cap` (e.g. 21, CAP_SYS_ADMIN) from the calling thread only;
/// processes it forks inherit the loss.
int portico_thread_drop_capability(int cap);

/// For tests: a seccomp filter on the calling thread (inherited by what it forks) that fails
/// unshare(2) with EPERM, as a system that allows no namespaces would.
int portico_thread_deny_unshare(void);

#endif
