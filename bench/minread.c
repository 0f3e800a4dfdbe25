/* minread: the floor for "read every sysctl" — open/read/close of every file under a root
 * (default /proc/sys), printing `key = value` lines like `sysctl -a`.
 *
 * Directories are walked with openat + getdents (readdir on fdopendir); each file is opened
 * relative to its directory, read with one small read(2) (looping only while the buffer fills:
 * /proc/sys handlers return the whole value in the first read, and the kernel allocates and zeroes
 * a buffer of the size asked for), and closed. Unreadable files (write-only, EPERM) are skipped.
 * Usage: minread [ROOT]   (exit 0; prints "read N keys" to stderr with -v)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BUF 256

static unsigned long keys;

static void emit(const char *key, const char *val, size_t n) {
    while (n && (val[n - 1] == '\n' || val[n - 1] == ' ' || val[n - 1] == '\t')) n--;
    fputs(key, stdout);
    fputs(" = ", stdout);
    for (size_t i = 0; i < n; i++) putchar(val[i] == '\t' || val[i] == '\n' ? ' ' : val[i]);
    putchar('\n');
}

static void walk(int dirfd, char *key, size_t len) {
    DIR *dir = fdopendir(dirfd);
    if (!dir) { close(dirfd); return; }
    struct dirent *e;
    char val[4096];
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        size_t n = strlen(e->d_name);
        if (len + n + 2 >= 512) continue;
        if (len) key[len] = '.';
        memcpy(key + len + !!len, e->d_name, n + 1);
        for (char *c = key + len + !!len; *c; c++) if (*c == '.') *c = '/'; /* eth0.100 -> eth0/100 */
        size_t klen = len + !!len + n;
        if (e->d_type == DT_DIR) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub >= 0) walk(sub, key, klen);
        } else if (e->d_type == DT_REG) {
            int fd = openat(dirfd, e->d_name, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            size_t got = 0;
            ssize_t r = 0;
            while (got + BUF <= sizeof val && (r = read(fd, val + got, BUF)) > 0) {
                got += (size_t)r;
                if (r < BUF) break;
            }
            close(fd);
            if (r >= 0) { keys++; emit(key, val, got); }
        }
        key[len] = 0;
    }
    closedir(dir);
}

int main(int argc, char **argv) {
    int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    const char *root = argc > 1 + verbose ? argv[1 + verbose] : "/proc/sys";
    static char out[1 << 16];
    setvbuf(stdout, out, _IOFBF, sizeof out);
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) { perror(root); return 1; }
    char key[512] = "";
    walk(fd, key, 0);
    fflush(stdout);
    if (verbose) fprintf(stderr, "read %lu keys\n", keys);
    return 0;
}
