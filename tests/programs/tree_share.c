/*
 * tree_share ROUNDS KIND...      KIND: anon (MAP_SHARED|MAP_ANONYMOUS), memfd, sysv (shmget/shmat)
 *
 * A parent and a child that share memory of each KIND (256 KiB each, set up before the fork, a
 * deterministic pattern after a small header) and one open file description: shared.log in the
 * working directory, opened before the fork with O_WRONLY|O_CREAT|O_TRUNC (no O_APPEND), so that
 * only the shared offset keeps their lines apart.
 *
 * Each round R (1..ROUNDS), for each area in turn, the parent writes R into the area's "seq" word
 * and waits until the child has copied it into "ack" (the child polls every area). So if an area
 * stopped being one object for both, the round would never complete: the parent says
 * "STALL kind R" after 3 s (once) and keeps waiting. After each round the parent writes "P R\n"
 * and the child "C R\n" to shared.log; every 50 rounds the parent prints "TICK R" and both check the
 * pattern of every area ("CORRUPT who kind words"). The SysV segment is marked for removal (IPC_RMID)
 * once both are attached, as programs usually do, so it lives as long as they do.
 *
 * Output: "AREA kind address" for each area, "KID C pid", "READY pid", "TICK R",
 * "WHO role pid=.. ppid=.." on SIGUSR1, and at the end "DONE rounds=R child=exit:CODE" (exit 0 when
 * the child exited 0 and nothing went wrong).
 */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define AREA_BYTES (256 * 1024)
#define MAX_AREAS 3

struct header {
    volatile uint64_t seq;
    volatile uint64_t ack;
};

static const char *kinds[MAX_AREAS];
static unsigned char *areas[MAX_AREAS];
static int count;
static volatile sig_atomic_t want_who;
static const char *role = "P";
static int problems;
static int shm_ids[MAX_AREAS] = { -1, -1, -1 };

static void on_usr1(int sig) { (void)sig; want_who = 1; }

static void who(void)
{
    want_who = 0;
    say("WHO %s pid=%d ppid=%d\n", role, (int)getpid(), (int)getppid());
}

static void check_areas(void)
{
    for (int a = 0; a < count; a++) {
        size_t bad = check_pattern(areas[a] + 4096, 0, (AREA_BYTES - 4096) / 8, (uint64_t)a + 1);
        if (bad) { say("CORRUPT %s %s %zu\n", role, kinds[a], bad); problems++; }
    }
}

static void write_line(int fd, const char *who_, long round)
{
    char line[32];
    int len = snprintf(line, sizeof line, "%s %ld\n", who_, round);
    for (int done = 0; done < len;) {
        ssize_t w = write(fd, line + done, (size_t)(len - done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("write of shared.log");
        done += (int)w;
    }
}

static unsigned char *make_area(const char *kind)
{
    void *p = MAP_FAILED;
    if (strcmp(kind, "anon") == 0) {
        p = mmap(NULL, AREA_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    } else if (strcmp(kind, "memfd") == 0) {
        int fd = memfd_create("tree_share", MFD_CLOEXEC);
        if (fd == -1 || ftruncate(fd, AREA_BYTES) == -1) die("memfd");
        p = mmap(NULL, AREA_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
    } else if (strcmp(kind, "sysv") == 0) {
        int id = shmget(IPC_PRIVATE, AREA_BYTES, IPC_CREAT | 0600);
        if (id == -1) die("shmget");
        p = shmat(id, NULL, 0);
        if (p == (void *)-1) p = MAP_FAILED;
        shm_ids[count] = id;
        say("SHMID %d\n", id);
    } else {
        say("unknown kind %s\n", kind);
        exit(2);
    }
    if (p == MAP_FAILED) die(kind);
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 3) { say("usage: tree_share ROUNDS KIND...\n"); return 2; }
    long rounds = atol(argv[1]);
    for (int i = 2; i < argc && count < MAX_AREAS; i++) {
        kinds[count] = argv[i];
        areas[count] = make_area(argv[i]);
        memset(areas[count], 0, 4096);
        fill_pattern(areas[count] + 4096, AREA_BYTES - 4096, (uint64_t)count + 1);
        say("AREA %s %p\n", kinds[count], (void *)areas[count]);
        count++;
    }
    int log = open("shared.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log == -1) die("open shared.log");
    on_signal(SIGUSR1, on_usr1, 0);

    pid_t child = fork();
    if (child == -1) die("fork");
    if (child == 0) {
        role = "C";
        long done = 0;
        while (done < rounds) {
            int all = 1;
            for (int a = 0; a < count; a++) {
                struct header *h = (struct header *)areas[a];
                if (h->seq != h->ack) h->ack = h->seq;
                if (h->ack != (uint64_t)done + 1) all = 0;
            }
            if (all) {
                done++;
                write_line(log, "C", done);
                if (done % 50 == 0) check_areas();
            }
            else usleep(200);
            if (want_who) who();
        }
        _exit(problems ? 1 : 0);
    }
    say("KID C %d\n", (int)child);
    /* Both are attached now (the child inherited the attachments): the SysV segments can go when they do. */
    for (int a = 0; a < count; a++)
        if (shm_ids[a] >= 0 && shmctl(shm_ids[a], IPC_RMID, NULL) == -1) die("shmctl(IPC_RMID)");
    say("READY %d\n", (int)getpid());

    for (long r = 1; r <= rounds; r++) {
        for (int a = 0; a < count; a++) {
            struct header *h = (struct header *)areas[a];
            h->seq = (uint64_t)r;
            int waited = 0, warned = 0;
            while (h->ack != (uint64_t)r) {
                usleep(200);
                if (want_who) who();
                if (++waited == 15000 && !warned) { say("STALL %s %ld\n", kinds[a], r); warned = 1; problems++; }
            }
        }
        write_line(log, "P", r);
        if (r % 50 == 0) { say("TICK %ld\n", r); check_areas(); }
        if (want_who) who();
        sleep_ms(2);
    }
    int status;
    while (waitpid(child, &status, 0) == -1) {
        if (errno != EINTR) die("waitpid");
    }
    say("DONE rounds=%ld child=%s:%d problems=%d\n", rounds, WIFEXITED(status) ? "exit" : "signal",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), problems);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && problems == 0 ? 0 : 1;
}
