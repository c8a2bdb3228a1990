/*
 * file_attrs: open file descriptions with state beyond their file, in "data" under its working directory.
 *
 *   3  data/posix.txt O_RDWR: POSIX write lock on bytes 10-19, POSIX read lock from byte 100 to EOF
 *   4  data/ofd.txt O_RDWR: OFD write lock on the whole file
 *   5  data/flock.txt O_RDONLY: flock(LOCK_SH)
 *   6  data/lease.txt O_RDONLY: read lease
 *   7  read end of a pipe, O_NONBLOCK;  8  its write end, blocking
 *   9  the same read end opened again through /proc/self/fd/7: another description, blocking
 *  10  one end of a socketpair, O_ASYNC, owner this process (F_SETOWN_EX), signal SIGUSR2 (F_SETSIG)
 *  11  the other end
 *  12  data/append.txt O_WRONLY|O_APPEND|O_NONBLOCK
 *  13  data/sparse.tmp, unlinked: 1 GiB with data only in its first page and at 512 MiB, owner 65534:65534,
 *      mode 0604, modified at 1000000000.5
 *  14  /proc/self/stat, that is /proc/PID/stat of this process
 * Prints "READY <pid>", then after each SIGUSR1 one line
 *   ATTRS posix=1 posix_read=1 ofd=1 flock=1 lease=1 nb7=1 nb8=0 nb9=0 append12=1 nb12=1 owner10=1 sig10=1 sigio=1
 *         sparse13=1 content13=1 owner13=1 mode13=1 mtime13=1 unlinked13=1 proc14=1
 * where each lock is checked from a child process (which must meet it), and sigio=1 means that a write to 11
 * made the kernel send SIGUSR2 about descriptor 10 to this process.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static volatile sig_atomic_t usr1, sigio_fd = -1;
static void on_usr1(int sig) { (void)sig; usr1++; }
static void on_usr2(int sig, siginfo_t *info, void *context)
{
    (void)sig; (void)context;
    sigio_fd = info->si_fd;
}

static int open_at(const char *path, int flags, int want)
{
    int fd = open(path, flags | O_CREAT, 0644);
    if (fd == -1) die(path);
    if (fd != want) {
        if (dup2(fd, want) == -1) die("dup2");
        close(fd);
    }
    return want;
}

static void move_to(int fd, int want)
{
    if (fd == want) return;
    if (dup2(fd, want) == -1) die("dup2");
    close(fd);
}

static void set_lock(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
    if (fcntl(fd, cmd, &fl) == -1) die("lock");
}

/* In a child: what a lock of type at start/len from another owner meets (F_UNLCK: nothing). */
static int child_meets(const char *path, int cmd, short type, off_t start, off_t len, short expect, int expect_parent)
{
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == -1) die("fork");
    if (child == 0) {
        int fd = open(path, O_RDWR);
        if (fd == -1) _exit(2);
        struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
        if (fcntl(fd, cmd, &fl) == -1) _exit(2);
        _exit(fl.l_type == expect && (!expect_parent || fl.l_pid == parent) ? 0 : 1);
    }
    int status;
    if (waitpid(child, &status, 0) != child) die("waitpid");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int child_flock_blocked(const char *path)
{
    pid_t child = fork();
    if (child == -1) die("fork");
    if (child == 0) {
        int fd = open(path, O_RDONLY);
        if (fd == -1) _exit(2);
        _exit(flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int status;
    if (waitpid(child, &status, 0) != child) die("waitpid");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int nonblocking(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

static int sigio_arrives(void)
{
    sigio_fd = -1;
    char byte = 'x', sink[16];
    if (write(11, &byte, 1) != 1) die("write 11");
    for (int i = 0; i < 2000 && sigio_fd == -1; i++) sleep_ms(1);
    while (recv(10, sink, sizeof sink, MSG_DONTWAIT) > 0) { }
    return sigio_fd == 10;
}

#define SPARSE_SIZE (1L << 30)
#define SPARSE_MIDDLE (1L << 29)

static int sparse_content(void)
{
    char a[16] = { 0 }, b[16] = { 0 }, hole[16] = { 1 };
    return pread(13, a, 5, 0) == 5 && memcmp(a, "first", 5) == 0
        && pread(13, b, 6, SPARSE_MIDDLE) == 6 && memcmp(b, "middle", 6) == 0
        && pread(13, hole, 16, 4096 * 16) == 16 && memcmp(hole, (char[16]){ 0 }, 16) == 0;
}

/* Descriptor 14 still shows this very process's stat. */
static int own_stat(void)
{
    char buf[64] = { 0 }, want[32];
    int n = snprintf(want, sizeof want, "%d (", getpid());
    return pread(14, buf, sizeof buf - 1, 0) > n && strncmp(buf, want, (size_t)n) == 0;
}

static void report(void)
{
    struct stat st;
    if (fstat(13, &st) == -1) die("fstat 13");
    struct f_owner_ex owner;
    if (fcntl(10, F_GETOWN_EX, &owner) == -1) die("F_GETOWN_EX");
    say("ATTRS posix=%d posix_read=%d ofd=%d flock=%d lease=%d nb7=%d nb8=%d nb9=%d append12=%d nb12=%d owner10=%d sig10=%d sigio=%d"
        " sparse13=%d content13=%d owner13=%d mode13=%d mtime13=%d unlinked13=%d proc14=%d\n",
        child_meets("data/posix.txt", F_GETLK, F_WRLCK, 12, 1, F_WRLCK, 1),
        child_meets("data/posix.txt", F_GETLK, F_WRLCK, 5000, 1, F_RDLCK, 1),
        child_meets("data/ofd.txt", F_OFD_GETLK, F_RDLCK, 0, 0, F_WRLCK, 0),
        child_flock_blocked("data/flock.txt"),
        fcntl(6, F_GETLEASE) == F_RDLCK,
        nonblocking(7), nonblocking(8), nonblocking(9),
        (fcntl(12, F_GETFL) & O_APPEND) != 0, nonblocking(12),
        owner.type == F_OWNER_PID && owner.pid == getpid(),
        fcntl(10, F_GETSIG) == SIGUSR2,
        sigio_arrives(),
        st.st_size == SPARSE_SIZE && st.st_blocks * 512 < (1 << 20), sparse_content(),
        st.st_uid == 65534 && st.st_gid == 65534, (st.st_mode & 07777) == 0604,
        st.st_mtim.tv_sec == 1000000000 && st.st_mtim.tv_nsec == 500000000, st.st_nlink == 0, own_stat());
}

int main(void)
{
    if (mkdir("data", 0755) == -1 && errno != EEXIST) die("mkdir data");
    set_lock(open_at("data/posix.txt", O_RDWR, 3), F_SETLK, F_WRLCK, 10, 10);
    set_lock(3, F_SETLK, F_RDLCK, 100, 0);
    set_lock(open_at("data/ofd.txt", O_RDWR, 4), F_OFD_SETLK, F_WRLCK, 0, 0);
    if (flock(open_at("data/flock.txt", O_RDONLY, 5), LOCK_SH) == -1) die("flock");
    if (fcntl(open_at("data/lease.txt", O_RDONLY, 6), F_SETLEASE, F_RDLCK) == -1) die("F_SETLEASE");

    int p[2];
    if (pipe(p) == -1) die("pipe");
    move_to(p[0], 7);
    move_to(p[1], 8);
    if (fcntl(7, F_SETFL, O_NONBLOCK) == -1) die("F_SETFL 7");
    open_at("/proc/self/fd/7", O_RDONLY, 9);

    int s[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) == -1) die("socketpair");
    move_to(s[0], 10);
    move_to(s[1], 11);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) == -1) die("sigaction");
    struct f_owner_ex me = { F_OWNER_PID, getpid() };
    if (fcntl(10, F_SETOWN_EX, &me) == -1 || fcntl(10, F_SETSIG, SIGUSR2) == -1) die("owner");
    if (fcntl(10, F_SETFL, O_ASYNC) == -1) die("O_ASYNC");
    open_at("data/append.txt", O_WRONLY | O_APPEND | O_NONBLOCK, 12);

    open_at("data/sparse.tmp", O_RDWR | O_TRUNC, 13);
    if (pwrite(13, "first", 5, 0) != 5 || pwrite(13, "middle", 6, SPARSE_MIDDLE) != 6) die("pwrite 13");
    if (ftruncate(13, SPARSE_SIZE) == -1) die("ftruncate 13");
    if (fchown(13, 65534, 65534) == -1 || fchmod(13, 0604) == -1) die("owner 13");
    struct timespec times[2] = { { 0, UTIME_OMIT }, { 1000000000, 500000000 } };
    if (futimens(13, times) == -1) die("futimens 13");
    if (unlink("data/sparse.tmp") == -1) die("unlink 13");

    open_at("/proc/self/stat", O_RDONLY, 14);

    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    say("READY %d\n", getpid());
    int seen = 0;
    for (;;) {
        if (usr1 != seen) {
            seen = usr1;
            report();
        }
        sleep_ms(2);
    }
}
