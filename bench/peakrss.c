/* peakrss ERRFILE CMD [ARG...]: runs CMD with stdout to /dev/null and stderr to ERRFILE, prints
 * its peak RSS in KiB (getrusage(RUSAGE_CHILDREN).ru_maxrss: the largest process of its tree)
 * and exits with CMD's exit status. A C parent keeps the pre-exec image small: the kernel counts
 * the forked parent's resident pages in the child's maximum until exec.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: peakrss ERRFILE CMD [ARG...]\n"); return 64; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        int out = open("/dev/null", O_WRONLY), err = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 1; }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("%ld\n", ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
