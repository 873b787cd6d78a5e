/* support.h — small helpers shared by the Criterion suites and the helper
 * programs in tests/helpers/ (no Criterion in here). */
#ifndef PSHM_TEST_SUPPORT_H
#define PSHM_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A block name unique to this process and call: "pshmt_<pid>_<n>_<tag>". */
void t_name(char *buf, size_t cap, const char *tag);

/* Whether /dev/shm/<name> exists right now. */
bool t_shm_exists(const char *name);

/* Whether some handle holds /dev/shm/<name> (its shared flock, which every
 * pshm handle keeps): an exclusive flock is refused right now. */
bool t_flock_held(const char *name);

/* Wait up to `seconds` for /dev/shm/<name> to disappear; true if it did. */
bool t_wait_gone(const char *name, double seconds);

/* A variable ctest sets (PSHM, PSHM_SOURCE, PSHM_HELPER_x); aborts if unset. */
const char *t_env(const char *var);

/*
 * Run `cmd` through /bin/sh, capture up to cap-1 bytes of its stdout into out
 * (NUL-terminated, trailing newline removed; out may be NULL) and return its
 * exit status (or -1 if it did not exit normally).
 */
int t_run(const char *cmd, char *out, size_t cap);

/* Start argv[0] with argv; its stdout is readable on *out_fd (may be NULL). */
pid_t t_spawn(char *const argv[], int *out_fd);

/* Read one line (without '\n') from fd into buf; false on EOF/timeout. */
bool t_read_line(int fd, char *buf, size_t cap, double seconds);

/* waitpid with a timeout in seconds; returns the raw status or -1. */
int t_wait(pid_t pid, double seconds);

/* The value of `field` ("VmRSS", "SigIgn", ...) in /proc/PID/status, as
 * text without the leading blanks, into value; false if there is none. */
bool t_proc_status(pid_t pid, const char *field, char *value, size_t cap);

/* The pid of a child of this process whose name (comm, as /proc/PID/stat
 * gives it, e.g. "pshm-tracker") is `comm`, or -1 if there is none. */
pid_t t_find_child(const char *comm);

#endif
