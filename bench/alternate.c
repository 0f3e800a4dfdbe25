/* alternate: times commands run by run, interleaved, so that load changing on a shared machine hits
 * every command alike (hyperfine runs all runs of one command before the next one).
 *
 *   alternate RUNS WARMUP SPEC OUT
 *
 * SPEC has one command per line: NAME <tab> PREPARE <tab> COMMAND, where PREPARE ("-" for none)
 * and COMMAND are words separated by spaces (no quoting). Every round runs each command once,
 * starting one command later than the previous round: its PREPARE (untimed), then COMMAND with
 * stdout to /dev/null and stderr to OUT.stderr, timed from fork to wait4 on CLOCK_MONOTONIC.
 * After WARMUP untimed rounds, RUNS rounds append "NAME <tab> SECONDS <tab> PEAK_RSS_KIB" lines
 * to OUT (peak RSS from wait4's rusage: the command's process tree). A non-zero exit of a
 * PREPARE or COMMAND stops everything with exit 1 and the command's stderr on stderr.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CMDS 16
#define MAX_WORDS 64

struct cmd {
    char name[64];
    char *prep[MAX_WORDS];
    char *argv[MAX_WORDS];
};

static char errfile[4096];

static void split(char *text, char **words) {
    int n = 0;
    for (char *w = strtok(text, " "); w && n < MAX_WORDS - 1; w = strtok(NULL, " ")) words[n++] = w;
    words[n] = NULL;
}

/* Runs argv; returns its wait status, the elapsed seconds and the peak RSS. */
static int run(char **argv, double *seconds, long *rss_kib) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        int out = open("/dev/null", O_WRONLY), err = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) { perror("wait4"); exit(1); }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    *rss_kib = ru.ru_maxrss;
    return status;
}

static void check(int status, const char *name, const char *what) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    fprintf(stderr, "alternate: %s (%s) failed with status %d; its stderr:\n", name, what, status);
    char line[1024];
    FILE *f = fopen(errfile, "r");
    while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: alternate RUNS WARMUP SPEC OUT\n"); return 64; }
    int runs = atoi(argv[1]), warmup = atoi(argv[2]);
    FILE *spec = fopen(argv[3], "r"), *out = fopen(argv[4], "a");
    if (!spec || !out) { perror("alternate: SPEC or OUT"); return 1; }
    snprintf(errfile, sizeof errfile, "%s.stderr", argv[4]);
    static struct cmd cmds[MAX_CMDS];
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (n < MAX_CMDS && getline(&line, &cap, spec) > 0) {
        line[strcspn(line, "\n")] = 0;
        char *name = strtok(line, "\t"), *prep = strtok(NULL, "\t"), *command = strtok(NULL, "\t");
        if (!name || !prep || !command) continue;
        snprintf(cmds[n].name, sizeof cmds[n].name, "%s", name);
        split(strcmp(prep, "-") ? strdup(prep) : strdup(""), cmds[n].prep);
        split(strdup(command), cmds[n].argv);
        n++;
        line = NULL;
        cap = 0;
    }
    if (n == 0) { fprintf(stderr, "alternate: no commands in %s\n", argv[3]); return 1; }
    for (int round = 0; round < warmup + runs; round++) {
        for (int k = 0; k < n; k++) {
            struct cmd *c = &cmds[(round + k) % n];
            double seconds;
            long rss;
            if (c->prep[0]) check(run(c->prep, &seconds, &rss), c->name, "prepare");
            check(run(c->argv, &seconds, &rss), c->name, "command");
            if (round >= warmup) fprintf(out, "%s\t%.9f\t%ld\n", c->name, seconds, rss);
        }
    }
    return fclose(out) == 0 ? 0 : 1;
}
