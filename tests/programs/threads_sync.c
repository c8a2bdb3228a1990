/*
 * threads_sync FIFO: threads blocked in condition variables, pthread_join and read(), from their own point of view.
 *
 * Threads (names in parentheses):
 *   producer ("producer") and consumer ("consumer"): a bounded queue of 4 slots under a mutex with two
 *     condition variables; the producer puts 1, 2, 3... (about one every 2 ms), the consumer takes them and
 *     checks that each is one more than the last (else bad++). Both spend their time in pthread_cond_wait
 *     or in the producer's sleep.
 *   fifo reader ("fifo-reader"): blocked in read() on FIFO, opened O_RDWR (so it never sees end of file);
 *     prints "FIFO <line>" for each line, and forwards "pipe TEXT" lines as TEXT to the self-pipe.
 *   pipe reader ("pipe-reader"): blocked in read() on the read end of a pipe whose write end the fifo reader
 *     holds; prints "PIPE <text>" for each line; on "exit" it returns 42.
 *   joiner ("joiner"): blocked in pthread_join on the pipe reader; prints "JOINED <return value>" when woken.
 * The main thread waits for SIGUSR1 (blocked in every thread, taken with sigwaitinfo) and answers each with
 *   STATE <seq> produced=<n> consumed=<n> bad=<n> joined=<0/1>
 * Prints "READY <pid>" once the consumer has taken an item and every thread is blocked where it should be.
 */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>

#define SLOTS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER, not_empty = PTHREAD_COND_INITIALIZER;
static uint64_t queue[SLOTS];
static int head, used;
static uint64_t produced, consumed, bad;
static volatile int joined;
static int fifo_fd, pipe_fds[2];
static pthread_t pipe_reader_thread;
static volatile int blocked_readers;

static void *producer(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "producer");
    for (uint64_t n = 1;; n++) {
        pthread_mutex_lock(&lock);
        while (used == SLOTS) pthread_cond_wait(&not_full, &lock);
        queue[(head + used) % SLOTS] = n;
        used++;
        produced = n;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&lock);
        sleep_ms(2);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "consumer");
    uint64_t last = 0;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (used == 0) pthread_cond_wait(&not_empty, &lock);
        uint64_t v = queue[head];
        head = (head + 1) % SLOTS;
        used--;
        if (v != last + 1) bad++;
        last = v;
        consumed++;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

/* One line (without its newline) from fd, or NULL at end of file. */
static char *read_line(int fd, char *buffer, size_t size, size_t *have)
{
    for (;;) {
        char *nl = memchr(buffer, '\n', *have);
        if (nl) {
            *nl = 0;
            return buffer;
        }
        if (*have == size) *have = 0;
        ssize_t n = read(fd, buffer + *have, size - *have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("read");
        if (n == 0) return NULL;
        *have += (size_t)n;
    }
}

static void consume_line(char *buffer, size_t *have)
{
    size_t len = strlen(buffer) + 1;
    memmove(buffer, buffer + len, *have - len);
    *have -= len;
}

static void *fifo_reader(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "fifo-reader");
    char buffer[512];
    size_t have = 0;
    __atomic_add_fetch(&blocked_readers, 1, __ATOMIC_SEQ_CST);
    char *line;
    while ((line = read_line(fifo_fd, buffer, sizeof buffer, &have)) != NULL) {
        say("FIFO %s\n", line);
        if (strncmp(line, "pipe ", 5) == 0) {
            char out[512];
            int n = snprintf(out, sizeof out, "%s\n", line + 5);
            if (write(pipe_fds[1], out, (size_t)n) != n) die("write to the pipe");
        }
        consume_line(buffer, &have);
    }
    return NULL;
}

static void *pipe_reader(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "pipe-reader");
    char buffer[512];
    size_t have = 0;
    __atomic_add_fetch(&blocked_readers, 1, __ATOMIC_SEQ_CST);
    char *line;
    while ((line = read_line(pipe_fds[0], buffer, sizeof buffer, &have)) != NULL) {
        say("PIPE %s\n", line);
        if (strcmp(line, "exit") == 0) return (void *)42;
        consume_line(buffer, &have);
    }
    return (void *)1;
}

static void *joiner(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "joiner");
    void *value = NULL;
    int r = pthread_join(pipe_reader_thread, &value);
    if (r != 0) say("JOIN-FAILED %d\n", r);
    else say("JOINED %ld\n", (long)(intptr_t)value);
    joined = 1;
    return NULL;
}

/* True when the thread named NAME of this process is blocked in system call NR. */
static int blocked_in(const char *name, long nr)
{
    char path[300], text[256];
    DIR *dir = opendir("/proc/self/task");
    if (!dir) die("opendir");
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int same = fgets(text, sizeof text, f) && strncmp(text, name, strlen(name)) == 0 && text[strlen(name)] == '\n';
        fclose(f);
        if (!same) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        long got = -2;
        if (fscanf(f, "%ld", &got) != 1) got = -2;
        fclose(f);
        found = got == nr;
    }
    closedir(dir);
    return found;
}

int main(int argc, char **argv)
{
    if (argc < 2) { say("FAILED usage: threads_sync FIFO\n"); return 2; }
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    fifo_fd = open(argv[1], O_RDWR | O_CLOEXEC);
    if (fifo_fd == -1) die("open FIFO");
    if (pipe2(pipe_fds, O_CLOEXEC) == -1) die("pipe2");

    pthread_t t;
    if (pthread_create(&t, NULL, producer, NULL) != 0) die("pthread_create");
    if (pthread_create(&t, NULL, consumer, NULL) != 0) die("pthread_create");
    if (pthread_create(&t, NULL, fifo_reader, NULL) != 0) die("pthread_create");
    if (pthread_create(&pipe_reader_thread, NULL, pipe_reader, NULL) != 0) die("pthread_create");
    if (pthread_create(&t, NULL, joiner, NULL) != 0) die("pthread_create");
    for (;;) {
        pthread_mutex_lock(&lock);
        uint64_t c = consumed;
        pthread_mutex_unlock(&lock);
        if (c > 0 && blocked_in("fifo-reader", SYS_read) && blocked_in("pipe-reader", SYS_read) && blocked_in("joiner", SYS_futex))
            break;
        sleep_ms(1);
    }
    say("READY %d\n", (int)getpid());
    for (uint64_t seq = 1;; seq++) {
        siginfo_t info;
        /* A checkpoint's freeze makes sigwaitinfo return EINTR (as any ptrace stop does): wait again. */
        if (sigwaitinfo(&usr1, &info) != SIGUSR1) { seq--; continue; }
        pthread_mutex_lock(&lock);
        uint64_t p = produced, c = consumed, b = bad;
        pthread_mutex_unlock(&lock);
        say("STATE %llu produced=%llu consumed=%llu bad=%llu joined=%d\n", (unsigned long long)seq,
            (unsigned long long)p, (unsigned long long)c, (unsigned long long)b, joined);
    }
}
