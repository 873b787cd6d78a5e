/*
 * check.h — the Windows tests' whole framework (Criterion has no Windows
 * build in Debian): CHECK counts a failure and goes on; main returns
 * non-zero if any check failed, which is what ctest looks at.
 */
#ifndef PSHM_WIN_CHECK_H
#define PSHM_WIN_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        check_count++;                                                                       \
        if (!(cond)) {                                                                       \
            check_failures++;                                                                \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                           \
            printf(__VA_ARGS__);                                                             \
            printf("\n");                                                                    \
        }                                                                                    \
    } while (0)

/* A call that returned rc and left pshm_last_error(): both as expected. */
#define CHECK_ERR(rc, code, message)                                                         \
    CHECK((rc) == (code) && strcmp(pshm_last_error(), (message)) == 0,                       \
          "rc %d (want %d), message \"%s\" (want \"%s\")", (int)(rc), (int)(code),           \
          pshm_last_error(), (message))

static int check_report(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures != 0;
}

#endif
