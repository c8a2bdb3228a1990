/*
 * restart_files: open files of several kinds in a directory "data" under its working directory, which
 * becomes its working directory; for the tests of reopening, offsets, unlinked files, -Relocate and
 * mapped files.
 *
 *   3  data/data.bin (64 KiB of pattern bytes, created here), O_RDWR, at offset 1000
 *   4  data/log.txt, O_WRONLY|O_APPEND|O_CREAT; each round appends "<round>\n"
 *   5  data/scratch.tmp, 10000 pattern bytes, O_RDWR, then unlinked, at offset 777
 *   6  data, O_RDONLY|O_DIRECTORY
 *   7  dup of 3: the same open file, sharing its offset
 *   data/mapped.bin (8 pages of pattern bytes, created here unless it exists) mapped MAP_PRIVATE read/write,
 *   page 1 then overwritten in memory (copy-on-write), the others only read; its descriptor is closed
 * Prints "READY <pid>", "TICK <round>" every 20 rounds (a round every 2 ms), and after each SIGUSR1:
 *   FILES n= round= pos3= pos5= flags3=<octal> flags4=<octal> flags5=<octal> cloexec4=0/1 cwd= fd3= fd4= fd5= fd6=
 *         shared=<1 if moving the offset of 3 moves that of 7>
 *         unlinked=<1 if descriptor 5 still reads its 10000 bytes and has no link left> map=<1 if the mapping
 *         holds the file's pattern, page 1 the program's own> touched=<a file it just created in its cwd>
 * where fdN is the readlink of /proc/self/fd/N; spaces in paths are written as '_'.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE 4096
#define MAP_PAGES 8
#define UNLINKED_BYTES 10000

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1++; }

static uint8_t byte_of(uint64_t seed, size_t i) { return (uint8_t)pattern_word(seed, i / 8) ^ (uint8_t)i; }

static void write_pattern_file(const char *path, size_t bytes, uint64_t seed, int keep_existing)
{
    if (keep_existing && access(path, F_OK) == 0) return;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1) die("create pattern file");
    uint8_t *buf = malloc(bytes);
    if (!buf) die("malloc");
    for (size_t i = 0; i < bytes; i++) buf[i] = byte_of(seed, i);
    if (write(fd, buf, bytes) != (ssize_t)bytes) die("write pattern file");
    free(buf);
    close(fd);
}

static void place(int fd, int want)
{
    if (fd == -1) die("open");
    if (fd == want) return;
    if (dup2(fd, want) == -1) die("dup2");
    close(fd);
}

static uint8_t *map;

static int check_unlinked(void)
{
    static uint8_t buf[UNLINKED_BYTES];
    struct stat st;
    if (fstat(5, &st) == -1 || st.st_nlink != 0 || st.st_size != UNLINKED_BYTES) return 0;
    if (pread(5, buf, sizeof buf, 0) != (ssize_t)sizeof buf) return 0;
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i] != byte_of(9, i)) return 0;
    return 1;
}

static int check_map(void)
{
    for (size_t i = 0; i < MAP_PAGES * PAGE; i++) {
        uint8_t want = i / PAGE == 1 ? byte_of(31, i) : byte_of(7, i);
        if (map[i] != want) return 0;
    }
    return 1;
}

/* Whether descriptors 3 and 7 still share one offset (one open file), as dup made them. */
static int check_shared(void)
{
    off_t at = lseek(3, 0, SEEK_CUR);
    if (lseek(3, at + 10, SEEK_SET) != at + 10) return 0;
    int shared = lseek(7, 0, SEEK_CUR) == at + 10;
    lseek(3, at, SEEK_SET);
    return shared;
}

static void link_of(int fd, char *out, size_t size)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, out, size - 1);
    if (n < 0) n = 0;
    out[n] = 0;
    for (char *p = out; *p; p++) if (*p == ' ') *p = '_';
}

int main(void)
{
    if (mkdir("data", 0755) == -1 && errno != EEXIST) die("mkdir data");
    if (chdir("data") == -1) die("chdir data");
    write_pattern_file("data.bin", 64 * 1024, 5, 0);
    write_pattern_file("mapped.bin", MAP_PAGES * PAGE, 7, 1);
    write_pattern_file("scratch.tmp", UNLINKED_BYTES, 9, 0);

    int m = open("mapped.bin", O_RDONLY | O_CLOEXEC);
    if (m == -1) die("open mapped.bin");
    map = mmap(NULL, MAP_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, m, 0);
    if (map == MAP_FAILED) die("mmap mapped.bin");
    close(m);
    for (size_t i = PAGE; i < 2 * PAGE; i++) map[i] = byte_of(31, i);

    place(open("data.bin", O_RDWR), 30);
    place(open("log.txt", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644), 31);
    place(open("scratch.tmp", O_RDWR), 32);
    if (unlink("scratch.tmp") == -1) die("unlink");
    place(open(".", O_RDONLY | O_DIRECTORY), 33);
    place(30, 3);
    if (dup3(31, 4, O_CLOEXEC) == -1) die("dup3");
    close(31);
    place(32, 5);
    place(33, 6);
    if (lseek(3, 1000, SEEK_SET) != 1000) die("lseek 3");
    if (lseek(5, 777, SEEK_SET) != 777) die("lseek 5");
    if (dup2(3, 7) == -1) die("dup2 7");

    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    say("READY %d\n", (int)getpid());

    unsigned long long round = 0;
    sig_atomic_t seen = 0;
    char line[32];
    for (;;) {
        round++;
        int n = snprintf(line, sizeof line, "%llu\n", round);
        if (write(4, line, (size_t)n) != n) die("write log");
        if (round % 20 == 0) say("TICK %llu\n", round);
        if (usr1 != seen) {
            seen = usr1;
            char cwd[1024], l3[1024], l4[1024], l5[1024], l6[1024], touched[64];
            if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "?");
            for (char *p = cwd; *p; p++) if (*p == ' ') *p = '_';
            link_of(3, l3, sizeof l3);
            link_of(4, l4, sizeof l4);
            link_of(5, l5, sizeof l5);
            link_of(6, l6, sizeof l6);
            snprintf(touched, sizeof touched, "touched.%d", (int)seen);
            int t = open(touched, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (t != -1) close(t);
            say("FILES n=%d round=%llu pos3=%lld pos5=%lld flags3=%o flags4=%o flags5=%o cloexec4=%d cwd=%s fd3=%s fd4=%s fd5=%s fd6=%s shared=%d unlinked=%d map=%d touched=%s\n",
                (int)seen, round, (long long)lseek(3, 0, SEEK_CUR), (long long)lseek(5, 0, SEEK_CUR),
                fcntl(3, F_GETFL), fcntl(4, F_GETFL), fcntl(5, F_GETFL), (fcntl(4, F_GETFD) & FD_CLOEXEC) ? 1 : 0,
                cwd, l3, l4, l5, l6, check_shared(), check_unlinked(), check_map(), t == -1 ? "-" : touched);
        }
        sleep_ms(2);
    }
}
