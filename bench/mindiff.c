/* mindiff: the floor for `sysprof diff` — for each `key = value` line of a sysctl.conf-style
 * file, read the key's current value (open/read/close under /proc/sys), compare it with the
 * desired value (whitespace-normalised) and print the keys that differ.
 * Usage: mindiff [--exit-code] FILE [ROOT]
 * Exit 1 on errors; with --exit-code, 2 when changes are pending (like `sysprof diff --exit-code`).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Collapses whitespace runs to one space and trims, in place. */
static char *norm(char *s) {
    char *w = s, *r = s;
    while (isspace((unsigned char)*r)) r++;
    while (*r) {
        if (isspace((unsigned char)*r)) {
            while (isspace((unsigned char)*r)) r++;
            if (*r) *w++ = ' ';
        } else *w++ = *r++;
    }
    *w = 0;
    return s;
}

int main(int argc, char **argv) {
    int exit_code = argc > 1 && strcmp(argv[1], "--exit-code") == 0;
    argv += exit_code;
    argc -= exit_code;
    if (argc < 2) { fprintf(stderr, "usage: mindiff [--exit-code] FILE [ROOT]\n"); return 1; }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 1; }
    int root = open(argc > 2 ? argv[2] : "/proc/sys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) { perror("root"); return 1; }
    char line[1024], path[512], cur[4096];
    int pending = 0, total = 0;
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        if (line[0] == '#' || line[0] == ';' || !eq) continue;
        *eq = 0;
        char *key = norm(line), *want = norm(eq + 1);
        snprintf(path, sizeof path, "%s", key);
        for (char *c = path; *c; c++) *c = *c == '.' ? '/' : *c == '/' ? '.' : *c;
        int fd = openat(root, path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, cur, sizeof cur - 1);
        if (fd >= 0) close(fd);
        total++;
        if (n < 0) { printf("%s: unreadable, want %s\n", key, want); pending = 1; continue; }
        cur[n] = 0;
        if (strcmp(norm(cur), want) != 0) { printf("%s: %s -> %s\n", key, cur, want); pending = 1; }
    }
    printf("%d key(s), %s\n", total, pending ? "changes pending" : "in sync");
    return exit_code && pending ? 2 : 0;
}
