/* errors.c — error codes, their texts, and the per-thread last message. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Each thread keeps its own message, so concurrent failures don't mix. */
static _Thread_local char last_message[512];

const char *pshm_strerror(int code)
{
    switch (code) {
    case PSHM_OK: return "success";
    case PSHM_ENOENT: return "no such shared memory block";
    case PSHM_EACCES: return "permission denied";
    case PSHM_EBUSY: return "the block is locked exclusively by another program";
    case PSHM_EEXIST: return "a shared memory block with that name already exists";
    case PSHM_EINVAL: return "invalid argument";
    case PSHM_EDEADLK: return "the calling thread already holds the lock";
    case PSHM_ETIMEDOUT: return "the lock was not acquired within the timeout";
    case PSHM_ENOTRECOVERABLE:
        return "the lock is broken: a holder died and it was "
               "never marked consistent";
    case PSHM_OWNERDEAD: return "acquired; the previous holder died holding the lock";
    case PSHM_EBADNAME: return "invalid block name";
    case PSHM_EBADSIZE: return "invalid block size";
    case PSHM_ELIMIT: return "a system limit was reached";
    case PSHM_ECLOSED: return "the handle is closed";
    case PSHM_ERANGE: return "index out of range";
    case PSHM_ETOOBIG: return "value exceeds the available storage";
    case PSHM_ECORRUPT: return "not a well-formed shareable list";
    case PSHM_ETYPE: return "wrong item type";
    case PSHM_ESYNTAX: return "not a valid literal";
    case PSHM_EAUTH: return "authentication failed";
    case PSHM_EPROTO: return "protocol error";
    case PSHM_ECONN: return "connection failed or lost";
    case PSHM_EADDR: return "invalid address";
    case PSHM_ENOTFOUND: return "value not found";
    case PSHM_ESYS: return "system call failed";
    case PSHM_ENOTHELD: return "the calling thread does not hold the lock";
    case PSHM_EBADLOCK: return "no initialised lock of that kind there";
    default: return "unknown error";
    }
}

const char *pshm_last_error(void) { return last_message; }

int err_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    return code;
}

static int code_for_errno(int errnum)
{
    switch (errnum) {
    case ENOENT: return PSHM_ENOENT;
    case EACCES:
    case EPERM: return PSHM_EACCES;
    case EEXIST: return PSHM_EEXIST;
    case EINVAL: return PSHM_EINVAL;
    case ENAMETOOLONG: return PSHM_EBADNAME;
    case EFBIG: return PSHM_EBADSIZE;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOSPC:
    case EAGAIN:
    case EDQUOT: return PSHM_ELIMIT;
    default: return PSHM_ESYS;
    }
}

int err_errno(int errnum, const char *what, const char *name, const char *call)
{
    int code = code_for_errno(errnum);
    const char *why = code == PSHM_ENOENT ? pshm_strerror(code) : strerror(errnum);
    return err_set(code, "%s \"%s\": %s: %s", what, name, call, why);
}
