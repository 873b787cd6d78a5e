/*
 * child.h — the Windows tests' child processes: start a program that sits
 * next to the test (or the test itself) with arguments, read the lines it
 * prints, kill it with TerminateProcess or wait for it.
 */
#ifndef PSHM_WIN_CHILD_H
#define PSHM_WIN_CHILD_H

#include <windows.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct child {
    PROCESS_INFORMATION pi;
    HANDLE out; /* the read end of its stdout */
} child;

/* Start `exe` (a file next to this program; NULL: this program) with
 * `args`, its stdout a pipe to c->out. */
static bool spawn_exe(child *c, const char *exe_name, const char *args)
{
    char exe[MAX_PATH], cmd[2 * MAX_PATH];
    DWORD n = GetModuleFileNameA(NULL, exe, sizeof exe);
    char *slash = strrchr(exe, '\\');
    if (n == 0 || slash == NULL)
        return false;
    if (exe_name != NULL)
        snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), "%s", exe_name);
    snprintf(cmd, sizeof cmd, "\"%s\" %s", exe, args);
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE wr;
    if (!CreatePipe(&c->out, &wr, &sa, 0))
        return false;
    SetHandleInformation(c->out, HANDLE_FLAG_INHERIT, 0);
    STARTUPINFOA si = {.cb = sizeof si, .dwFlags = STARTF_USESTDHANDLES};
    si.hStdOutput = wr;
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    BOOL ok = CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &c->pi);
    CloseHandle(wr);
    return ok;
}

/* Its next line (blocking until it comes or the child ends). */
static void read_line(child *c, char *line, size_t cap)
{
    size_t len = 0;
    DWORD got;
    char ch;
    while (len + 1 < cap && ReadFile(c->out, &ch, 1, &got, NULL) && got == 1 && ch != '\n')
        if (ch != '\r')
            line[len++] = ch;
    line[len] = '\0';
}

/* Wait for it to end, and let it go. */
static void reap(child *c)
{
    WaitForSingleObject(c->pi.hProcess, INFINITE);
    CloseHandle(c->pi.hProcess);
    CloseHandle(c->pi.hThread);
    CloseHandle(c->out);
}

static void kill_child(child *c)
{
    TerminateProcess(c->pi.hProcess, 9);
    reap(c);
}

#endif
