/* sockgen: fills the current network namespace with TCP sockets for bench/sockets, on loopback.
 *
 *   sockgen PORT ESTABLISHED CLOSE_WAIT TIME_WAIT DESTINATIONS
 *
 * Run it inside a throwaway namespace only. Listeners bind 127.0.0.1:PORT, PORT+1, … and produce:
 * - ESTABLISHED connections to a listener that never accepts: both ends ESTABLISHED, the server
 *   end waiting in the accept queue (no descriptor), the client end held here (one descriptor);
 * - CLOSE_WAIT the same way, with the client half-closing (shutdown SHUT_WR): the queued server
 *   end goes CLOSE_WAIT, the held client end FIN_WAIT2;
 * - TIME_WAIT from short connections spread over DESTINATIONS accepting listeners, each closed by
 *   the client first: the client end stays in TIME_WAIT for 60 s and holds no descriptor.
 * So ESTABLISHED + CLOSE_WAIT descriptors (plus a few) must fit the open-file limit, raised here to
 * the hard limit; the queues need net.core.somaxconn and the TIME_WAIT sockets
 * net.ipv4.tcp_max_tw_buckets and a wide ip_local_port_range, all set by bench/sockets inside the
 * namespace. Prints "ready" once everything exists, then holds the sockets until stdin closes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int listener(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = loopback(port);
    if (fd < 0) die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 65535) < 0) die("listen");
    return fd;
}

static int connected(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(port);
    if (fd < 0) die("socket (raise the open-file limit or hold fewer sockets)");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    return fd;
}

/* `count` client ends held open toward a listener that never accepts; half-closed if asked. */
static void queued(int port, long count, int half_close) {
    listener(port);
    for (long i = 0; i < count; i++) {
        int fd = connected(port);
        if (half_close && shutdown(fd, SHUT_WR) < 0) die("shutdown");
    }
}

/* `count` short connections over `dests` accepting listeners, the client closing first. */
static void time_wait(int port, long count, int dests) {
    int ls[64];
    char byte;
    for (int d = 0; d < dests; d++) ls[d] = listener(port + d);
    for (long i = 0; i < count; i++) {
        int d = (int)(i % dests), c = connected(port + d), s = accept(ls[d], NULL, NULL);
        if (s < 0) die("accept");
        close(c);
        if (read(s, &byte, 1) != 0) die("read: expected the client's FIN");
        close(s);
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: sockgen PORT ESTABLISHED CLOSE_WAIT TIME_WAIT DESTINATIONS\n");
        return 64;
    }
    int port = atoi(argv[1]), dests = atoi(argv[5]);
    long established = atol(argv[2]), close_wait = atol(argv[3]), tw = atol(argv[4]);
    if (dests < 1 || dests > 64) dests = 1;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    queued(port, established, 0);
    queued(port + 1, close_wait, 1);
    time_wait(port + 2, tw, dests);
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}
