#define _GNU_SOURCE
#include "CSystem.h"

int portico_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return accept4(fd, addr, len, flags);
}

int portico_set_thread_name(pthread_t t, const char *name) {
    return pthread_setname_np(t, name);
}

// ---------------------------------------------------------------------------------------------
// Containers with volume mounts: a child in its own mount namespace.

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// What the child writes to the error pipe when a step before execve fails.
struct portico_spawn_report { int stage; int err; int index; };

static void child_fail(int fd, int stage, int err, int index) {
    struct portico_spawn_report r = { stage, err, index };
    ssize_t n;
    do { n = write(fd, &r, sizeof r); } while (n < 0 && errno == EINTR);
    _exit(127);
}

// Async-signal-safe decimal formatting (for uid_map / gid_map lines).
static size_t put_uint(char *out, unsigned v) {
    char tmp[16]; size_t n = 0, i = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < sizeof tmp);
    while (n) out[i++] = tmp[--n];
    return i;
}

static int write_file(const char *path, const char *text, size_t len) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

// Maps the caller's uid/gid to themselves in a fresh user namespace (enough to own a mount
// namespace without privileges).
static int map_self(uid_t uid, gid_t gid) {
    char line[64]; size_t n;
    if (write_file("/proc/self/setgroups", "deny", 4) != 0 && errno != ENOENT) return -1;
    n = put_uint(line, uid); line[n++] = ' '; n += put_uint(line + n, uid); line[n++] = ' '; line[n++] = '1'; line[n++] = '\n';
    if (write_file("/proc/self/uid_map", line, n) != 0) return -1;
    n = put_uint(line, gid); line[n++] = ' '; n += put_uint(line + n, gid); line[n++] = ' '; line[n++] = '1'; line[n++] = '\n';
    return write_file("/proc/self/gid_map", line, n);
}

// mkdir -p of a mount point inside the container's namespace (a mount point inside another
// volume's mount exists only there), or an empty file for a file bind.
static int make_mount_point(const char *target, int directory) {
    char buf[PATH_MAX];
    size_t len = strlen(target);
    if (len == 0 || len >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, target, len + 1);
    for (size_t i = 1; i < len; i++) {
        if (buf[i] != '/') continue;
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        buf[i] = '/';
    }
    if (directory) return mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : -1;
    int fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static void close_from(int lowest, int keep) {
#ifdef SYS_close_range
    if (keep > lowest) syscall(SYS_close_range, (unsigned)lowest, (unsigned)(keep - 1), 0);
    if (syscall(SYS_close_range, (unsigned)(keep + 1), ~0U, 0) == 0) return;
#endif
    for (int fd = lowest; fd < 65536; fd++) if (fd != keep) close(fd);
}

pid_t portico_spawn_in_mount_namespace(const char *file, char *const argv[], char *const envp[],
                                       const char *search_path, const char *log_path, const char *work_dir,
                                       const struct portico_bind *binds, int nbinds, pid_t join_pid,
                                       int *err_stage, int *err_errno, int *err_index) {
    *err_stage = PORTICO_SPAWN_OK; *err_errno = 0; *err_index = -1;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) { *err_stage = PORTICO_SPAWN_FORK; *err_errno = errno; return -1; }
    uid_t uid = getuid(); gid_t gid = getgid();
    pid_t pid = fork();
    if (pid < 0) {
        *err_stage = PORTICO_SPAWN_FORK; *err_errno = errno;
        close(pipefd[0]); close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        // Child: only async-signal-safe calls from here to execve.
        int rep = pipefd[1];
        close(pipefd[0]);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++) if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        if (setpgid(0, 0) != 0) child_fail(rep, PORTICO_SPAWN_SETPGID, errno, -1);
        if (join_pid > 0) {
            // An exec probe: the mounts of the container it checks, not new ones.
            char path[64] = "/proc/";
            size_t n = 6 + put_uint(path + 6, (unsigned)join_pid);
            memcpy(path + n, "/ns/mnt", 8);
            int ns = open(path, O_RDONLY | O_CLOEXEC);
            if (ns < 0) child_fail(rep, PORTICO_SPAWN_SETNS, errno, -1);
            if (setns(ns, CLONE_NEWNS) != 0) {
                // A container in a user namespace (the unprivileged fallback): join that first.
                if (errno != EPERM) child_fail(rep, PORTICO_SPAWN_SETNS, errno, -1);
                memcpy(path + n, "/ns/user", 9);
                int user = open(path, O_RDONLY | O_CLOEXEC);
                if (user < 0 || setns(user, CLONE_NEWUSER) != 0 || setns(ns, CLONE_NEWNS) != 0)
                    child_fail(rep, PORTICO_SPAWN_SETNS, errno, -1);
                close(user);
            }
            close(ns);
        } else if (unshare(CLONE_NEWNS) != 0) {
            int first = errno;
            if (first != EPERM) child_fail(rep, PORTICO_SPAWN_UNSHARE, first, -1);
            if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) child_fail(rep, PORTICO_SPAWN_UNSHARE, errno, -1);
            if (map_self(uid, gid) != 0) child_fail(rep, PORTICO_SPAWN_USERNS, errno, -1);
        }
        // Nothing mounted here propagates back to the host (or to other containers).
        if (join_pid <= 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) child_fail(rep, PORTICO_SPAWN_PRIVATE, errno, -1);
        for (int i = 0; join_pid <= 0 && i < nbinds; i++) {
            struct stat st;
            if (stat(binds[i].target, &st) != 0) {
                struct stat src;
                if (stat(binds[i].source, &src) != 0 || make_mount_point(binds[i].target, S_ISDIR(src.st_mode)) != 0)
                    child_fail(rep, PORTICO_SPAWN_BIND, errno, i);
            }
            if (mount(binds[i].source, binds[i].target, NULL, MS_BIND | MS_REC, NULL) != 0)
                child_fail(rep, PORTICO_SPAWN_BIND, errno, i);
            if (binds[i].read_only) {
                // Keep the flags the source mount has (a user namespace may not clear them).
                // statfs reports ST_* flags; mount(2) takes MS_* (equal for the low bits only).
                unsigned long keep = 0;
                struct statfs sf;
                if (statfs(binds[i].target, &sf) == 0) {
                    unsigned long f = (unsigned long)sf.f_flags;
                    if (f & ST_NOSUID) keep |= MS_NOSUID;
                    if (f & ST_NODEV) keep |= MS_NODEV;
                    if (f & ST_NOEXEC) keep |= MS_NOEXEC;
                    if (f & ST_NOATIME) keep |= MS_NOATIME;
                    if (f & ST_NODIRATIME) keep |= MS_NODIRATIME;
                    if (f & ST_RELATIME) keep |= MS_RELATIME;
                }
                if (mount(NULL, binds[i].target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL) != 0)
                    child_fail(rep, PORTICO_SPAWN_READONLY, errno, i);
            }
        }
        if (work_dir && *work_dir && chdir(work_dir) != 0) child_fail(rep, PORTICO_SPAWN_CHDIR, errno, -1);
        int in = open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0) child_fail(rep, PORTICO_SPAWN_STDIO, errno, -1);
        if (in != 0) close(in);
        if (log_path) {
            int out = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (out < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) child_fail(rep, PORTICO_SPAWN_STDIO, errno, -1);
            if (out > 2) close(out);
        }
        // Descriptors the server forgot to mark close-on-exec must not outlive it in a pod.
        close_from(3, rep);
        if (strchr(file, '/')) {
            execve(file, argv, envp);
            child_fail(rep, PORTICO_SPAWN_EXEC, errno, -1);
        }
        // execvpe's search, on the PATH of the pod and after the mounts (a command may live in a volume).
        const char *p = search_path && *search_path ? search_path : "/usr/bin:/bin";
        size_t flen = strlen(file);
        int last = ENOENT, sawAccess = 0;
        char buf[PATH_MAX];
        while (1) {
            const char *end = strchr(p, ':');
            size_t dlen = end ? (size_t)(end - p) : strlen(p);
            if (dlen + 1 + flen + 1 <= sizeof buf) {
                size_t n = 0;
                if (dlen == 0) buf[n++] = '.'; else { memcpy(buf, p, dlen); n = dlen; }
                buf[n++] = '/';
                memcpy(buf + n, file, flen + 1);
                execve(buf, argv, envp);
                last = errno;
                if (last == EACCES) sawAccess = 1;
                else if (last != ENOENT && last != ENOTDIR) break;
            }
            if (!end) break;
            p = end + 1;
        }
        child_fail(rep, PORTICO_SPAWN_EXEC, sawAccess && (last == ENOENT || last == ENOTDIR) ? EACCES : last, -1);
    }
    close(pipefd[1]);
    // Also set the group here, so it is in place whichever of parent and child runs first.
    setpgid(pid, pid);
    struct portico_spawn_report r;
    ssize_t n;
    do { n = read(pipefd[0], &r, sizeof r); } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n == (ssize_t)sizeof r) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *err_stage = r.stage; *err_errno = r.err; *err_index = r.index;
        return -1;
    }
    return pid;
}

int portico_mount_tmpfs(const char *target, const char *options) {
    return mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options);
}

int portico_unmount_detach(const char *target) {
    return umount2(target, MNT_DETACH);
}

// ---------------------------------------------------------------------------------------------
// For tests: take privileges away from one thread (and what it forks), to exercise the agent's
// unprivileged paths while the test process stays root.

#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>

int portico_thread_drop_capability(int cap) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) return -1;
    d[cap / 32].effective &= ~(1u << (cap % 32));
    d[cap / 32].permitted &= ~(1u << (cap % 32));
    d[cap / 32].inheritable &= ~(1u << (cap % 32));
    return (int)syscall(SYS_capset, &h, d);
}

int portico_thread_deny_unshare(void) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { (unsigned short)(sizeof code / sizeof code[0]), code };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}
