/*
 * removed_paths: a process in a chroot ("jail" under its working directory) holding what was removed while
 * it stayed open, all inside the jail:
 *   cwd  /gone, removed
 *   3    /gone2, a directory, removed
 *   4    /fifo, O_RDWR, with "hello" in flight, removed
 *   5, 6 /a and /b, two names of one file (two descriptions), both removed; "shared" written through 5
 *   7    an O_TMPFILE file in /, holding "tmp"
 *   8    /null, a device node made for /dev/null's device (1:3), O_RDWR, removed
 *   9    /link, a symbolic link to "somewhere/else", itself open with O_PATH|O_NOFOLLOW, removed
 * Prints "READY <pid>", then after each SIGUSR1 one line
 *   PATHS root=1 cwd=1 dir3=1 fifo4=1 same56=1 tmp7=1 dev8=1 link9=1
 * root: "/" is the jail; cwd: the working directory is a removed directory; dir3: likewise for 3; fifo4: the
 * bytes in flight are there (read and put back); same56: 5 and 6 are one removed file with its bytes; tmp7.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1++; }

static void at(int fd, int want)
{
    if (fd == -1) die("open");
    if (fd != want) {
        if (dup2(fd, want) == -1) die("dup2");
        close(fd);
    }
}

static int removed_dir(const struct stat *st) { return S_ISDIR(st->st_mode) && st->st_nlink == 0; }

int main(void)
{
    struct stat jail, st5, st6, st;
    if (mkdir("jail", 0755) == -1 || mkdir("jail/gone", 0755) == -1 || mkdir("jail/gone2", 0755) == -1) die("mkdir");
    if (stat("jail", &jail) == -1) die("stat jail");
    if (chdir("jail/gone") == -1 || chroot("..") == -1) die("chroot");
    if (rmdir("/gone") == -1) die("rmdir gone");
    at(open("/gone2", O_RDONLY | O_DIRECTORY), 3);
    if (rmdir("/gone2") == -1) die("rmdir gone2");
    if (mkfifo("/fifo", 0640) == -1) die("mkfifo");
    at(open("/fifo", O_RDWR), 4);
    if (write(4, "hello", 5) != 5) die("write fifo");
    if (unlink("/fifo") == -1) die("unlink fifo");
    at(open("/a", O_RDWR | O_CREAT, 0644), 5);
    if (link("/a", "/b") == -1) die("link");
    at(open("/b", O_RDWR), 6);
    if (write(5, "shared", 6) != 6) die("write 5");
    if (unlink("/a") == -1 || unlink("/b") == -1) die("unlink a b");
    at(open("/", O_TMPFILE | O_RDWR, 0600), 7);
    if (write(7, "tmp", 3) != 3) die("write 7");
    if (mknod("/null", S_IFCHR | 0600, makedev(1, 3)) == -1) die("mknod");
    at(open("/null", O_RDWR), 8);
    if (unlink("/null") == -1) die("unlink null");
    if (symlink("somewhere/else", "/link") == -1) die("symlink");
    at(open("/link", O_PATH | O_NOFOLLOW), 9);
    if (unlink("/link") == -1) die("unlink link");

    on_signal(SIGUSR1, on_usr1, SA_RESTART);
    say("READY %d\n", getpid());
    int seen = 0;
    for (;;) {
        if (usr1 != seen) {
            seen = usr1;
            char fifo[8] = { 0 }, six[8] = { 0 }, tmp[4] = { 0 };
            int fifo_ok = read(4, fifo, 5) == 5 && memcmp(fifo, "hello", 5) == 0;
            if (fifo_ok && write(4, fifo, 5) != 5) die("write fifo back");
            if (fstat(5, &st5) == -1 || fstat(6, &st6) == -1) die("fstat 5 6");
            int same = st5.st_ino == st6.st_ino && st5.st_dev == st6.st_dev && st5.st_nlink == 0
                && pread(6, six, 6, 0) == 6 && memcmp(six, "shared", 6) == 0;
            struct stat root, cwd, dir3;
            if (stat("/", &root) == -1 || stat(".", &cwd) == -1 || fstat(3, &dir3) == -1) die("stat");
            struct stat dev;
            if (fstat(8, &dev) == -1) die("fstat 8");
            int dev_ok = S_ISCHR(dev.st_mode) && dev.st_rdev == makedev(1, 3) && dev.st_nlink == 0 && write(8, "x", 1) == 1;
            char target[64] = { 0 };
            struct stat link;
            int link_ok = readlinkat(9, "", target, sizeof target - 1) == 14 && strcmp(target, "somewhere/else") == 0
                && fstatat(9, "", &link, AT_EMPTY_PATH) == 0 && S_ISLNK(link.st_mode) && link.st_nlink == 0;
            say("PATHS root=%d cwd=%d dir3=%d fifo4=%d same56=%d tmp7=%d dev8=%d link9=%d\n",
                root.st_ino == jail.st_ino && root.st_dev == jail.st_dev, removed_dir(&cwd), removed_dir(&dir3),
                fifo_ok, same, pread(7, tmp, 3, 0) == 3 && memcmp(tmp, "tmp", 3) == 0 && fstat(7, &st) == 0 && st.st_nlink == 0, dev_ok, link_ok);
        }
        sleep_ms(2);
    }
}
