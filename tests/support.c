/* support.c — see support.h. */
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void t_name(char *buf, size_t cap, const char *tag)
{
    static int counter;
    snprintf(buf, cap, "pshmt_%d_%d_%s", (int)getpid(),
             __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED), tag);
}

bool t_shm_exists(const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    return stat(path, &st) == 0;
}

bool t_proc_status(pid_t pid, const char *field, char *value, size_t cap)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    size_t len = strlen(field);
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL) {
        found = strncmp(line, field, len) == 0 && line[len] == ':';
        if (found)
            snprintf(value, cap, "%s", line + len + 1 + strspn(line + len + 1, " \t"));
    }
    if (f != NULL)
        fclose(f);
    return found;
}

bool t_flock_held(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd); /* also drops the exclusive lock if it was granted */
    return held;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

bool t_wait_gone(const char *name, double seconds)
{
    double end = now() + seconds;
    while (t_shm_exists(name)) {
        if (now() > end)
            return false;
        usleep(10000);
    }
    return true;
}

const char *t_env(const char *var)
{
    const char *v = getenv(var);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "test support: %s is not set (run the tests through ctest)\n", var);
        abort();
    }
    return v;
}

int t_run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = 0;
    char scratch[4096];
    for (;;) {
        char *dst = out && n + 1 < cap ? out + n : scratch;
        size_t room = out && n + 1 < cap ? cap - 1 - n : sizeof scratch;
        size_t r = fread(dst, 1, room, p);
        if (r == 0)
            break;
        if (dst != scratch)
            n += r;
    }
    if (out != NULL && cap > 0) {
        out[n] = '\0';
        while (n > 0 && out[n - 1] == '\n')
            out[--n] = '\0';
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t t_spawn(char *const argv[], int *out_fd)
{
    int fds[2] = {-1, -1};
    if (out_fd != NULL && pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (out_fd != NULL) {
            dup2(fds[1], STDOUT_FILENO);
            close(fds[0]);
            close(fds[1]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (out_fd != NULL) {
        close(fds[1]);
        *out_fd = fds[0];
    }
    return pid;
}

bool t_read_line(int fd, char *buf, size_t cap, double seconds)
{
    size_t n = 0;
    double end = now() + seconds;
    while (n + 1 < cap) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)((end - now()) * 1000);
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return false;
        char c;
        if (read(fd, &c, 1) != 1)
            return false;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return true;
}

int t_wait(pid_t pid, double seconds)
{
    double end = now() + seconds;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(2000);
    }
}

pid_t t_find_child(const char *comm)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    pid_t found = -1;
    struct dirent *de;
    while (found < 0 && (de = readdir(d)) != NULL) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* "PID (COMM) STATE PPID ...": COMM may hold ')', so the last one ends it. */
        char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
        int ppid;
        if (lp == NULL || rp == NULL || rp < lp || sscanf(rp + 1, " %*c %d", &ppid) != 1 ||
            ppid != getpid())
            continue;
        *rp = '\0';
        if (strcmp(lp + 1, comm) == 0)
            found = atoi(buf);
    }
    closedir(d);
    return found;
}
