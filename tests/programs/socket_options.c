/*
 * socket_options: sockets of several kinds with options that are not the defaults, a classic BPF
 * filter and shut-down directions, checked by the program itself on SIGUSR1 (after a restart).
 *   unix stream pair: SO_RCVBUF, SO_RCVTIMEO, SO_PEEK_OFF on one end; "hello" waiting in it; the
 *     other end shut for writing (so the first reads "hello", then end-of-file)
 *   unix seqpacket pair: SO_PASSSEC, one end holds a message and is shut both ways (the state that
 *     once made a checkpoint loop for ever)
 *   unix stream pair whose other end was closed, "tail" waiting in the end left
 *   unix datagram socket, never bound: SO_SNDBUF (set, so locked), SO_PRIORITY, SO_TIMESTAMPNS
 *   UDP socket connected to itself: SO_BROADCAST, SO_MARK, IP_TOS, IP_TTL, IP_RECVTTL, a filter
 *     (accept everything, 2 instructions), shut for writing (a send must fail with EPIPE)
 *   UDP socket bound to a port of an address that is not the machine's, with IP_FREEBIND
 *   IPv6 UDP socket: IPV6_UNICAST_HOPS, IPV6_RECVPKTINFO, IPV6_V6ONLY
 *   listening TCP socket: SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT, SO_LINGER, TCP_NODELAY, TCP_CORK,
 *     TCP_USER_TIMEOUT, TCP_DEFER_ACCEPT, TCP_CONGESTION reno, SO_RCVLOWAT
 *   established TCP connection to it (both ends held): SO_KEEPALIVE with TCP_KEEPIDLE, TCP_USER_TIMEOUT
 * Prints "READY <pid>". On SIGUSR1 prints one "CHECK <what> ok" or "CHECK <what> BAD ..." per
 * check, then "DONE bad=<n>".
 */
#include "common.h"
#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

static volatile sig_atomic_t asked;
static int bad;

static void on_usr1(int sig) { (void)sig; asked++; }

static void set(int fd, int level, int name, int value, const char *what)
{
    if (setsockopt(fd, level, name, &value, sizeof value) == -1) die(what);
}

static void expect(int fd, int level, int name, int want, const char *what)
{
    int value = -12345;
    socklen_t length = sizeof value;
    if (getsockopt(fd, level, name, &value, &length) == -1) { say("CHECK %s BAD getsockopt: %s\n", what, strerror(errno)); bad++; return; }
    if (value != want) { say("CHECK %s BAD %d, not %d\n", what, value, want); bad++; return; }
    say("CHECK %s ok\n", what);
}

static void report(int good, const char *what, const char *detail)
{
    if (good) say("CHECK %s ok\n", what);
    else { say("CHECK %s BAD %s\n", what, detail); bad++; }
}

int main(void)
{
    on_signal(SIGUSR1, on_usr1, SA_RESTART);

    int sp[2], sq[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) die("socketpair stream");
    set(sp[0], SOL_SOCKET, SO_RCVBUF, 40000, "SO_RCVBUF");
    struct timeval timeout = { 2, 500000 };
    if (setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == -1) die("SO_RCVTIMEO");
    set(sp[0], SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF");
    if (write(sp[1], "hello", 5) != 5) die("write");
    if (shutdown(sp[1], SHUT_WR) == -1) die("shutdown stream");

    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) == -1) die("socketpair seqpacket");
    set(sq[1], SOL_SOCKET, SO_PASSSEC, 1, "SO_PASSSEC");
    if (write(sq[1], "msg", 3) != 3) die("write seqpacket");
    if (shutdown(sq[0], SHUT_RDWR) == -1) die("shutdown seqpacket");

    int orphan[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, orphan) == -1) die("socketpair orphan");
    if (write(orphan[1], "tail", 4) != 4) die("write orphan");
    close(orphan[1]);

    int ud = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (ud == -1) die("socket unix dgram");
    set(ud, SOL_SOCKET, SO_SNDBUF, 30000, "SO_SNDBUF");
    set(ud, SOL_SOCKET, SO_PRIORITY, 5, "SO_PRIORITY");
    set(ud, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");

    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (udp == -1) die("socket udp");
    struct sockaddr_in here = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t length = sizeof here;
    if (bind(udp, (struct sockaddr *)&here, sizeof here) == -1 || getsockname(udp, (struct sockaddr *)&here, &length) == -1) die("bind udp");
    if (connect(udp, (struct sockaddr *)&here, sizeof here) == -1) die("connect udp");
    set(udp, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
    set(udp, SOL_SOCKET, SO_MARK, 7, "SO_MARK");
    set(udp, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
    set(udp, IPPROTO_IP, IP_TTL, 33, "IP_TTL");
    set(udp, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
    struct sock_filter accept_all[] = { BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0), BPF_STMT(BPF_RET | BPF_K, 0xffff) };
    struct sock_fprog program = { .len = 2, .filter = accept_all };
    if (setsockopt(udp, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) == -1) die("SO_ATTACH_FILTER");
    if (shutdown(udp, SHUT_WR) == -1) die("shutdown udp");

    int freebind = socket(AF_INET, SOCK_DGRAM, 0);
    set(freebind, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
    struct sockaddr_in elsewhere = { .sin_family = AF_INET, .sin_port = htons(0), .sin_addr.s_addr = inet_addr("198.51.100.7") };
    if (bind(freebind, (struct sockaddr *)&elsewhere, sizeof elsewhere) == -1) die("bind freebind");

    int udp6 = socket(AF_INET6, SOCK_DGRAM, 0);
    if (udp6 == -1) die("socket udp6");
    set(udp6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9, "IPV6_UNICAST_HOPS");
    set(udp6, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
    set(udp6, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in at = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    length = sizeof at;
    if (bind(listener, (struct sockaddr *)&at, sizeof at) == -1 || getsockname(listener, (struct sockaddr *)&at, &length) == -1) die("bind tcp");
    set(listener, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
    set(listener, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
    set(listener, IPPROTO_TCP, TCP_KEEPINTVL, 11, "TCP_KEEPINTVL");
    set(listener, IPPROTO_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT");
    struct linger linger = { 1, 3 };
    if (setsockopt(listener, SOL_SOCKET, SO_LINGER, &linger, sizeof linger) == -1) die("SO_LINGER");
    set(listener, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    set(listener, IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK");
    set(listener, IPPROTO_TCP, TCP_USER_TIMEOUT, 12345, "TCP_USER_TIMEOUT");
    set(listener, IPPROTO_TCP, TCP_DEFER_ACCEPT, 5, "TCP_DEFER_ACCEPT");
    set(listener, SOL_SOCKET, SO_RCVLOWAT, 3, "SO_RCVLOWAT");
    if (setsockopt(listener, IPPROTO_TCP, TCP_CONGESTION, "reno", 4) == -1) die("TCP_CONGESTION");
    if (listen(listener, 4) == -1) die("listen");
    int client = socket(AF_INET, SOCK_STREAM, 0);
    set(client, SOL_SOCKET, SO_KEEPALIVE, 1, "client SO_KEEPALIVE");
    set(client, IPPROTO_TCP, TCP_KEEPIDLE, 99, "client TCP_KEEPIDLE");
    set(client, IPPROTO_TCP, TCP_USER_TIMEOUT, 4321, "client TCP_USER_TIMEOUT");
    if (connect(client, (struct sockaddr *)&at, sizeof at) == -1) die("connect tcp");
    /* TCP_DEFER_ACCEPT holds the connection back until data comes. */
    if (write(client, "x", 1) != 1) die("write tcp");
    int server = accept(listener, NULL, NULL);
    if (server == -1) die("accept");
    char x;
    if (read(server, &x, 1) != 1) die("read tcp");

    /* The kernel keeps TCP_DEFER_ACCEPT as a count of retransmissions: it reads back rounded up. */
    int defer = 0;
    socklen_t deferLength = sizeof defer;
    if (getsockopt(listener, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, &deferLength) == -1) die("TCP_DEFER_ACCEPT");

    say("READY %d\n", (int)getpid());
    while (!asked) pause();

    char buffer[16];
    ssize_t n = recv(sp[0], buffer, sizeof buffer, MSG_DONTWAIT);
    report(n == 5 && memcmp(buffer, "hello", 5) == 0, "stream pair data", "not hello");
    n = recv(sp[0], buffer, sizeof buffer, MSG_DONTWAIT);
    report(n == 0, "stream pair end-of-file (peer shut for writing)", n < 0 ? strerror(errno) : "data");
    errno = 0;
    n = send(sp[1], "again", 5, MSG_NOSIGNAL);
    report(n == -1 && errno == EPIPE, "stream pair end shut for writing refuses to send", "it sent");
    expect(sp[0], SOL_SOCKET, SO_RCVBUF, 80000, "SO_RCVBUF");
    struct timeval got;
    socklen_t size = sizeof got;
    report(getsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &got, &size) == 0 && got.tv_sec == 2 && got.tv_usec == 500000, "SO_RCVTIMEO", "other timeout");
    expect(sp[0], SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF");

    n = recv(sq[0], buffer, sizeof buffer, MSG_DONTWAIT);
    report(n == 3 && memcmp(buffer, "msg", 3) == 0, "seqpacket message kept", n < 0 ? strerror(errno) : "other data");
    n = recv(sq[0], buffer, sizeof buffer, MSG_DONTWAIT);
    report(n == 0, "seqpacket end-of-file after shutdown", n < 0 ? strerror(errno) : "data");
    expect(sq[1], SOL_SOCKET, SO_PASSSEC, 1, "SO_PASSSEC");

    n = recv(orphan[0], buffer, sizeof buffer, MSG_DONTWAIT);
    report(n == 4 && memcmp(buffer, "tail", 4) == 0, "data left by a closed end", n < 0 ? strerror(errno) : "other data");
    n = recv(orphan[0], buffer, sizeof buffer, MSG_DONTWAIT);
    report(n == 0, "end-of-file after it", n < 0 ? strerror(errno) : "data");

    expect(ud, SOL_SOCKET, SO_SNDBUF, 60000, "SO_SNDBUF");
    expect(ud, SOL_SOCKET, SO_PRIORITY, 5, "SO_PRIORITY");
    expect(ud, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");

    expect(udp, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
    expect(udp, SOL_SOCKET, SO_MARK, 7, "SO_MARK");
    expect(udp, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
    expect(udp, IPPROTO_IP, IP_TTL, 33, "IP_TTL");
    expect(udp, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
    struct sock_filter filter[8];
    socklen_t blocks = 8;
    report(getsockopt(udp, SOL_SOCKET, SO_GET_FILTER, filter, &blocks) == 0 && blocks == 2 && memcmp(filter, accept_all, sizeof accept_all) == 0,
           "socket filter", "other filter");
    errno = 0;
    n = send(udp, "x", 1, MSG_NOSIGNAL);
    report(n == -1 && errno == EPIPE, "UDP shut for writing refuses to send", "it sent");

    expect(freebind, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
    struct sockaddr_in bound;
    length = sizeof bound;
    report(getsockname(freebind, (struct sockaddr *)&bound, &length) == 0 && bound.sin_addr.s_addr == elsewhere.sin_addr.s_addr,
           "bound to an address not of this machine", "other address");

    expect(udp6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9, "IPV6_UNICAST_HOPS");
    expect(udp6, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
    expect(udp6, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");

    expect(listener, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
    expect(listener, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
    expect(listener, IPPROTO_TCP, TCP_KEEPINTVL, 11, "TCP_KEEPINTVL");
    expect(listener, IPPROTO_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT");
    struct linger l;
    size = sizeof l;
    report(getsockopt(listener, SOL_SOCKET, SO_LINGER, &l, &size) == 0 && l.l_onoff == 1 && l.l_linger == 3, "SO_LINGER", "other linger");
    expect(listener, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    expect(listener, IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK");
    expect(listener, IPPROTO_TCP, TCP_USER_TIMEOUT, 12345, "TCP_USER_TIMEOUT");
    expect(listener, IPPROTO_TCP, TCP_DEFER_ACCEPT, defer, "TCP_DEFER_ACCEPT");
    expect(listener, SOL_SOCKET, SO_RCVLOWAT, 3, "SO_RCVLOWAT");
    char congestion[16] = "";
    size = sizeof congestion;
    report(getsockopt(listener, IPPROTO_TCP, TCP_CONGESTION, congestion, &size) == 0 && strcmp(congestion, "reno") == 0, "TCP_CONGESTION", congestion);

    expect(client, SOL_SOCKET, SO_KEEPALIVE, 1, "client SO_KEEPALIVE");
    expect(client, IPPROTO_TCP, TCP_KEEPIDLE, 99, "client TCP_KEEPIDLE");
    expect(client, IPPROTO_TCP, TCP_USER_TIMEOUT, 4321, "client TCP_USER_TIMEOUT");
    report(write(client, "y", 1) == 1 && read(server, &x, 1) == 1 && x == 'y', "TCP connection carries on", "no byte");

    say("DONE bad=%d\n", bad);
    for (;;) pause();
}
