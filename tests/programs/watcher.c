/*
 * watcher DIR: watches with inotify, from a thread blocked in read():
 *   wd 1: DIR (IN_CREATE | IN_DELETE)
 *   wd 2: DIR/a (IN_MODIFY)
 *   wd 3: DIR/b, removed again: the next watch gets 4, leaving a gap
 *   wd 4: DIR/c (IN_ATTRIB)
 * The files a, b and c must exist. Prints "WATCH <wd> <path>" for each watch, "READY <pid>", then
 * "EVENT <wd> <mask in hex> <name>" for every event it reads.
 */
#include "common.h"
#include <sys/inotify.h>

int main(int argc, char **argv)
{
    if (argc < 2) { say("usage: watcher DIR\n"); return 2; }
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd == -1) die("inotify_init1");
    char path[4096];
    int wd = inotify_add_watch(fd, argv[1], IN_CREATE | IN_DELETE);
    say("WATCH %d %s\n", wd, argv[1]);
    snprintf(path, sizeof path, "%s/a", argv[1]);
    wd = inotify_add_watch(fd, path, IN_MODIFY);
    say("WATCH %d %s\n", wd, path);
    snprintf(path, sizeof path, "%s/b", argv[1]);
    wd = inotify_add_watch(fd, path, IN_MODIFY);
    if (wd == -1 || inotify_rm_watch(fd, wd) == -1) die("watch b");
    snprintf(path, sizeof path, "%s/c", argv[1]);
    wd = inotify_add_watch(fd, path, IN_ATTRIB);
    say("WATCH %d %s\n", wd, path);
    say("READY %d\n", (int)getpid());
    char buffer[4096] __attribute__((aligned(8)));
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n == -1) { if (errno == EINTR) continue; die("read"); }
        for (char *p = buffer; p < buffer + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (e->mask & IN_IGNORED) { p += sizeof *e + e->len; continue; }
            say("EVENT %d %x %s\n", e->wd, e->mask, e->len ? e->name : "-");
            p += sizeof *e + e->len;
        }
    }
}
