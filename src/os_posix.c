/*
 * os_posix.c — the parts of os_posix.h that are not inline: the "C" locale
 * floats are written and read in, and libsodium's one start.
 */
#include "internal.h"

#include <pthread.h>

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

os_locale os_c_locale_enter(void)
{
    pthread_once(&c_locale_once, make_c_locale);
    return uselocale(c_locale);
}

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static int crypto_rc;

static void crypto_start(void) { crypto_rc = sodium_init() < 0 ? -1 : 0; }

int os_crypto_init(void)
{
    pthread_once(&crypto_once, crypto_start);
    return crypto_rc;
}
