/*
 * Per-process and per-thread attributes a restart must give back, each set to a value that is not
 * the default (run as root): supplementary groups, capability sets and securebits (different in
 * each thread), a filesystem uid, nice values, scheduling policies, CPU affinity, the parent-death
 * signal of a child (whose parent is restarted too), oom_score_adj, the audit loginuid,
 * PR_SET_THP_DISABLE and PR_SET_CHILD_SUBREAPER; and, given a cgroup directory as its argument,
 * its cgroup (it moves itself there first, so its children and threads start in it).
 *
 * Two threads: main and "worker". On SIGUSR1 each thread reads its own attributes (from the
 * kernel's calls, not /proc) and the main thread prints one "ATTR <who> ..." line per thread and
 * one for the process, then "CHECK ok" when every value is the one it set at the start, or
 * "CHECK differs <who>" otherwise.
 *
 * The subreaper is tested by what it is for: a child ("helper") has a child of its own
 * ("orphan"). On SIGUSR2 the helper is told to exit; the orphan then waits for its parent to
 * change and prints "ORPHAN parent=<pid>", which must be this process; the helper prints its
 * parent-death signal ("HELPER pdeathsig=28") before it goes.
 */
#include "common.h"
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>

#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#define PR_GET_THP_DISABLE 42
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_IS_SET 1
#endif
#define SECBIT_KEEP_CAPS_BIT (1 << 4)
#define SECBIT_NO_SETUID_FIXUP_BIT (1 << 2)

static volatile sig_atomic_t report_wanted, orphan_wanted;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int worker_asked, worker_done;
static char worker_line[512], worker_expected[512], main_expected[512], process_expected[256];
static int helper_pipe[2];

static void on_usr1(int sig) { (void)sig; report_wanted = 1; }
static void on_usr2(int sig) { (void)sig; orphan_wanted = 1; }

static void caps(unsigned long long *eff, unsigned long long *prm, unsigned long long *inh)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d)) die("capget");
    *eff = d[0].effective | ((unsigned long long)d[1].effective << 32);
    *prm = d[0].permitted | ((unsigned long long)d[1].permitted << 32);
    *inh = d[0].inheritable | ((unsigned long long)d[1].inheritable << 32);
}

static void set_caps(unsigned long long eff, unsigned long long prm, unsigned long long inh)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2] = {
        { (unsigned)eff, (unsigned)prm, (unsigned)inh },
        { (unsigned)(eff >> 32), (unsigned)(prm >> 32), (unsigned)(inh >> 32) },
    };
    if (syscall(SYS_capset, &h, d)) die("capset");
}

/* What the calling thread sees of its own attributes. */
static void describe_thread(char *out, size_t size)
{
    unsigned long long eff, prm, inh, bnd = 0, amb = 0;
    caps(&eff, &prm, &inh);
    for (int c = 0; c < 64; c++) {
        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) bnd |= 1ULL << c;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1) amb |= 1ULL << c;
    }
    int tid = (int)syscall(SYS_gettid);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, tid);
    struct sched_param sp;
    int policy = sched_getscheduler(tid);
    if (sched_getparam(tid, &sp)) die("sched_getparam");
    cpu_set_t cpus;
    if (sched_getaffinity(tid, sizeof cpus, &cpus)) die("sched_getaffinity");
    unsigned long mask = 0;
    for (int c = 0; c < 64; c++) if (CPU_ISSET(c, &cpus)) mask |= 1UL << c;
    int pdeath = 0;
    prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0);
    int fsuid = (int)syscall(SYS_setfsuid, -1); /* an invalid id changes nothing and answers the current one */
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    snprintf(out, size, "uid=%u/%u/%u fsuid=%d eff=%llx prm=%llx inh=%llx bnd=%llx amb=%llx securebits=%d nice=%d policy=%d prio=%d cpus=%lx pdeathsig=%d",
             r, e, s, fsuid, eff, prm, inh, bnd, amb, prctl(PR_GET_SECUREBITS, 0, 0, 0, 0), nice, policy, sp.sched_priority, mask, pdeath);
}

static void describe_process(char *out, size_t size)
{
    gid_t groups[64];
    int n = getgroups(64, groups);
    char list[256] = "";
    for (int i = 0; i < n; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%u", i ? "," : "", groups[i]);
    char oom[32] = "?", login[32] = "none";
    FILE *f = fopen("/proc/self/oom_score_adj", "r");
    if (f) { if (!fgets(oom, sizeof oom, f)) strcpy(oom, "?"); fclose(f); }
    f = fopen("/proc/self/loginuid", "r");
    if (f) { if (!fgets(login, sizeof login, f)) strcpy(login, "?"); fclose(f); }
    oom[strcspn(oom, "\n")] = 0;
    login[strcspn(login, "\n")] = 0;
    int reaper = 0;
    prctl(PR_GET_CHILD_SUBREAPER, &reaper, 0, 0, 0);
    char cgroup[256] = "?", line[512];
    f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) { snprintf(cgroup, sizeof cgroup, "%s", line + 3); cgroup[strcspn(cgroup, "\n")] = 0; }
    if (f) fclose(f);
    snprintf(out, size, "groups=%s oom_score_adj=%s loginuid=%s thp_disable=%d subreaper=%d cgroup=%s",
             list, oom, login, prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), reaper, cgroup);
}

static void *worker(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    prctl(PR_SET_NAME, "worker", 0, 0, 0);
    int tid = (int)syscall(SYS_gettid);

    /* Its own credentials: a filesystem uid, capabilities other than the main thread's, KEEP_CAPS. */
    if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0)) die("PR_CAPBSET_DROP worker");
    unsigned long long eff, prm, inh;
    caps(&eff, &prm, &inh);
    set_caps(eff & ~((1ULL << CAP_NET_RAW) | (1ULL << CAP_MKNOD)), prm & ~(1ULL << CAP_MKNOD), inh | (1ULL << CAP_NET_BIND_SERVICE));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0)) die("PR_CAP_AMBIENT_RAISE");
    if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS_BIT, 0, 0, 0)) die("PR_SET_SECUREBITS worker");
    syscall(SYS_setfsuid, 4321);
    /* Round robin at priority 3, keeping a nice value of its own for when it leaves it; one CPU. */
    if (setpriority(PRIO_PROCESS, tid, 5)) die("setpriority worker");
    struct sched_param sp = { .sched_priority = 3 };
    if (sched_setscheduler(tid, SCHED_RR | SCHED_RESET_ON_FORK, &sp)) die("sched_setscheduler worker");
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    if (sched_setaffinity(tid, sizeof one, &one)) die("sched_setaffinity worker");

    pthread_mutex_lock(&lock);
    describe_thread(worker_expected, sizeof worker_expected);
    worker_done = 1;
    pthread_cond_broadcast(&cond);
    for (;;) {
        while (!worker_asked) pthread_cond_wait(&cond, &lock);
        worker_asked = 0;
        describe_thread(worker_line, sizeof worker_line);
        worker_done = 1;
        pthread_cond_broadcast(&cond);
    }
    return NULL;
}

static void orphan(void)
{
    pid_t helper = getppid();
    while (getppid() == helper) usleep(10000);
    say("ORPHAN parent=%d\n", (int)getppid());
    for (;;) pause();
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        char procs[512];
        snprintf(procs, sizeof procs, "%s/cgroup.procs", argv[1]);
        int cg = open(procs, O_WRONLY);
        if (cg < 0 || write(cg, "0", 1) != 1) die("enter the cgroup");
        close(cg);
    }
    /* The launcher's SIGKILL-on-its-death goes: a restart makes this process a child of the
     * restarting PowerShell, and does not carry a parent-death signal over to that new parent. */
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    /* Process-wide: groups, oom_score_adj, loginuid, THP off, subreaper. */
    gid_t groups[] = { 0, 100, 4242 };
    if (setgroups(3, groups)) die("setgroups");
    int fd = open("/proc/self/oom_score_adj", O_WRONLY);
    if (fd < 0 || write(fd, "333", 3) != 3) die("oom_score_adj");
    close(fd);
    fd = open("/proc/self/loginuid", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "4242", 4) != 4) die("loginuid");
        close(fd);
    }
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) die("PR_SET_THP_DISABLE");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) die("PR_SET_CHILD_SUBREAPER");

    /* The helper and its child, before the worker thread exists (fork copies only the caller). */
    if (pipe(helper_pipe)) die("pipe");
    pid_t helper = fork();
    if (helper < 0) die("fork");
    if (helper == 0) {
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
        pid_t child = fork();
        if (child < 0) die("fork");
        if (child == 0) {
            close(helper_pipe[0]);
            close(helper_pipe[1]);
            orphan();
        }
        close(helper_pipe[1]);
        if (prctl(PR_SET_PDEATHSIG, SIGWINCH, 0, 0, 0)) die("PR_SET_PDEATHSIG");
        char byte;
        while (read(helper_pipe[0], &byte, 1) < 0 && errno == EINTR) { }
        int pdeath = 0;
        prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0);
        say("HELPER pdeathsig=%d\n", pdeath);
        _exit(0);
    }
    close(helper_pipe[0]);

    /* The main thread's own: CAP_CHOWN out of the effective set, CAP_KILL inheritable, a nice value of 7 under SCHED_BATCH. */
    unsigned long long eff, prm, inh;
    caps(&eff, &prm, &inh);
    set_caps(eff & ~(1ULL << CAP_CHOWN), prm, inh | (1ULL << CAP_KILL));
    if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP_BIT, 0, 0, 0)) die("PR_SET_SECUREBITS");
    struct sched_param none = { 0 };
    if (sched_setscheduler(0, SCHED_BATCH, &none)) die("sched_setscheduler");
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 7)) die("setpriority");

    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL)) die("pthread_create");
    pthread_mutex_lock(&lock);
    while (!worker_done) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    describe_thread(main_expected, sizeof main_expected);
    describe_process(process_expected, sizeof process_expected);

    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    say("READY %d\n", (int)getpid());
    for (;;) {
        pause();
        if (orphan_wanted) {
            orphan_wanted = 0;
            if (write(helper_pipe[1], "x", 1) != 1) die("write to the helper");
            int status;
            while (waitpid(helper, &status, 0) < 0 && errno == EINTR) { }
        }
        if (report_wanted) {
            report_wanted = 0;
            pthread_mutex_lock(&lock);
            worker_done = 0;
            worker_asked = 1;
            pthread_cond_broadcast(&cond);
            while (!worker_done) pthread_cond_wait(&cond, &lock);
            pthread_mutex_unlock(&lock);
            char mine[512], process[256];
            describe_thread(mine, sizeof mine);
            describe_process(process, sizeof process);
            say("ATTR main %s\n", mine);
            say("ATTR worker %s\n", worker_line);
            say("ATTR process %s\n", process);
            const char *bad = strcmp(mine, main_expected) ? "main" : strcmp(worker_line, worker_expected) ? "worker"
                : strcmp(process, process_expected) ? "process" : NULL;
            if (bad) say("CHECK differs %s\n", bad); else say("CHECK ok\n");
        }
    }
}
