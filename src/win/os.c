/*
 * os.c — os.h on Windows: UTF-8, str.isprintable, the "C" locale,
 * randomness and HMAC-SHA256 (CNG), and Windows error messages.
 */
#include "internal.h"

#include <windows.h>

#include <bcrypt.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 --------------------------------------------------------------- */

/*
 * The strict decoder every text call rests on (RFC 3629, as libunistring's
 * u8_mbtoucr): no overlong forms, no surrogates, nothing past U+10FFFF.
 * Returns the sequence's length, -1 if it is invalid, -2 if n cuts a valid
 * beginning short.
 */
int os_utf8_decode_strict(uint32_t *uc, const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *uc = c;
        return 1;
    }
    int len = c >= 0xc2 && c <= 0xdf   ? 2
              : c >= 0xe0 && c <= 0xef ? 3
              : c >= 0xf0 && c <= 0xf4 ? 4
                                       : 0;
    if (len == 0)
        return -1;
    uint32_t v = c & (0x7f >> len);
    /* The second byte's range also rules out overlongs, surrogates and
     * values past U+10FFFF. */
    uint8_t lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    uint8_t hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -2;
        uint8_t b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
            return -1;
        v = (v << 6) | (b & 0x3f);
    }
    *uc = v;
    return len;
}

const uint8_t *os_utf8_check(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t uc;
        int len = os_utf8_decode_strict(&uc, s + i, n - i);
        if (len < 0)
            return s + i;
        i += (size_t)len;
    }
    return NULL;
}

/* Callers hand in checked text; anything else reads as U+FFFD, one byte. */
int os_utf8_decode(uint32_t *uc, const uint8_t *s, size_t n)
{
    int len = os_utf8_decode_strict(uc, s, n);
    if (len > 0)
        return len;
    *uc = 0xfffd;
    return 1;
}

int os_utf8_encode(uint8_t *out, uint32_t uc, size_t room)
{
    int len = uc < 0x80 ? 1 : uc < 0x800 ? 2 : uc < 0x10000 ? 3 : 4;
    if ((size_t)len > room)
        return -1;
    if (len == 1) {
        out[0] = (uint8_t)uc;
        return 1;
    }
    for (int i = len - 1; i > 0; i--, uc >>= 6)
        out[i] = (uint8_t)(0x80 | (uc & 0x3f));
    out[0] = (uint8_t)((0xff00 >> len) | uc);
    return len;
}

/* ---- str.isprintable ----------------------------------------------------- */

/* Unicode 14's format characters (Cf), which Windows' character types do
 * not single out: Python escapes them. */
static const uint32_t format_chars[][2] = {
    {0x00ad, 0x00ad},   {0x0600, 0x0605},   {0x061c, 0x061c},   {0x06dd, 0x06dd},
    {0x070f, 0x070f},   {0x0890, 0x0891},   {0x08e2, 0x08e2},   {0x180e, 0x180e},
    {0x200b, 0x200f},   {0x202a, 0x202e},   {0x2060, 0x2064},   {0x2066, 0x206f},
    {0xfeff, 0xfeff},   {0xfff9, 0xfffb},   {0x110bd, 0x110bd}, {0x110cd, 0x110cd},
    {0x13430, 0x13438}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001},
    {0xe0020, 0xe007f},
};

/*
 * Python's str.isprintable() for one non-ASCII code point, from Windows' own
 * character tables (GetStringTypeW): not printable are controls, spaces and
 * separators (C1_CNTRL, C1_SPACE), code points Windows does not define (no
 * C1_DEFINED), surrogates, private use, noncharacters and the format
 * characters above. Outside the Basic Multilingual Plane Windows gives no
 * types, so there the unassigned stretch U+3134B..U+E00FF and U+E01F0..
 * U+10FFFF are not printable and the rest is. Differences from Python 3.11
 * (Unicode 14) remain for code points unassigned in planes 1 and 2 (shown
 * as is, Python escapes them) and where Windows' tables follow another
 * Unicode version; docs/design.md says so.
 */
bool os_is_printable(uint32_t uc)
{
    for (size_t i = 0; i < sizeof format_chars / sizeof *format_chars; i++)
        if (uc >= format_chars[i][0] && uc <= format_chars[i][1])
            return false;
    if ((uc & 0xfffe) == 0xfffe || (uc >= 0xfdd0 && uc <= 0xfdef))
        return false; /* noncharacters */
    if (uc >= 0x10000)
        return !(uc >= 0x3134b && uc <= 0xe00ff) && uc < 0xe01f0;
    if ((uc >= 0xd800 && uc <= 0xdfff) || (uc >= 0xe000 && uc <= 0xf8ff))
        return false;
    WCHAR w = (WCHAR)uc;
    WORD type = 0;
    if (!GetStringTypeW(CT_CTYPE1, &w, 1, &type))
        return true;
    return (type & C1_DEFINED) && !(type & (C1_CNTRL | C1_SPACE));
}

/* ---- the "C" locale ------------------------------------------------------ */

/*
 * Windows has no uselocale. The common case costs one look: a thread whose
 * LC_NUMERIC is "C" is left alone. Otherwise the thread is switched to a
 * locale of its own for the call and back, so other threads are untouched.
 */
os_locale os_c_locale_enter(void)
{
    const char *cur = setlocale(LC_NUMERIC, NULL);
    if (cur == NULL || strcmp(cur, "C") == 0)
        return NULL;
    char *saved = malloc(strlen(cur) + 2);
    if (saved == NULL)
        return NULL; /* out of memory: the caller's locale is used */
    /* saved[0] remembers whether the thread already had its own locale. */
    saved[0] = _configthreadlocale(_ENABLE_PER_THREAD_LOCALE) == _ENABLE_PER_THREAD_LOCALE;
    strcpy(saved + 1, cur);
    setlocale(LC_NUMERIC, "C");
    return saved;
}

void os_c_locale_leave(os_locale saved)
{
    if (saved == NULL)
        return;
    setlocale(LC_NUMERIC, saved + 1);
    if (!saved[0])
        _configthreadlocale(_DISABLE_PER_THREAD_LOCALE);
    free(saved);
}

/* ---- randomness and the MAC ---------------------------------------------- */

int os_random_bytes(void *buf, size_t n)
{
    NTSTATUS st = BCryptGenRandom(NULL, buf, (ULONG)n, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    return BCRYPT_SUCCESS(st) ? 0 : PSHM_ESYS;
}

/*
 * HMAC-SHA256 through CNG. Should CNG fail, the result is random bytes: a
 * MAC that matches nothing, so the handshake fails as for a wrong key and
 * never succeeds by accident.
 */
void os_hmac_sha256(uint8_t out[32], const void *key, size_t keylen, const os_bytes *parts,
                    size_t nparts)
{
    BCRYPT_ALG_HANDLE alg = NULL;
    BCRYPT_HASH_HANDLE h = NULL;
    NTSTATUS st = BCryptOpenAlgorithmProvider(&alg, BCRYPT_SHA256_ALGORITHM, NULL,
                                              BCRYPT_ALG_HANDLE_HMAC_FLAG);
    if (BCRYPT_SUCCESS(st))
        st = BCryptCreateHash(alg, &h, NULL, 0, (PUCHAR)key, (ULONG)keylen, 0);
    for (size_t i = 0; BCRYPT_SUCCESS(st) && i < nparts; i++)
        st = BCryptHashData(h, (PUCHAR)parts[i].p, (ULONG)parts[i].n, 0);
    if (BCRYPT_SUCCESS(st))
        st = BCryptFinishHash(h, out, 32, 0);
    if (h != NULL)
        BCryptDestroyHash(h);
    if (alg != NULL)
        BCryptCloseAlgorithmProvider(alg, 0);
    if (!BCRYPT_SUCCESS(st) && os_random_bytes(out, 32) < 0)
        for (int i = 0; i < 32; i++)
            out[i] = (uint8_t)(0xa5 ^ i); /* still matches no MAC we compute */
}

bool os_equal_ct(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

/* ---- errors and names ---------------------------------------------------- */

static int code_for_win(unsigned long werr)
{
    switch (werr) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND: return PSHM_ENOENT;
    case ERROR_ACCESS_DENIED: return PSHM_EACCES;
    case ERROR_ALREADY_EXISTS: return PSHM_EEXIST;
    case ERROR_INVALID_PARAMETER: return PSHM_EINVAL;
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_FILENAME_EXCED_RANGE: return PSHM_EBADNAME;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
    case ERROR_DISK_FULL:
    case ERROR_TOO_MANY_OPEN_FILES: return PSHM_ELIMIT;
    default: return PSHM_ESYS;
    }
}

int err_win(unsigned long werr, const char *what, const char *name, const char *call)
{
    int code = code_for_win(werr);
    if (code == PSHM_ENOENT)
        return err_set(code, "%s \"%s\": %s: %s", what, name, call, pshm_strerror(code));
    char text[256] = "";
    DWORD len = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                               NULL, werr, 0, text, sizeof text, NULL);
    while (len > 0 &&
           (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == '.'))
        text[--len] = '\0';
    return err_set(code, "%s \"%s\": %s: %s (Windows error %lu)", what, name, call,
                   len > 0 ? text : "failed", werr);
}

int name_to_wide(const char *what, const char *name, wchar_t out[PSHM_NAME_MAX + 1])
{
    int n =
        MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, out, PSHM_NAME_MAX + 1);
    if (n > 0)
        return 0;
    return err_set(PSHM_EBADNAME, "%s \"%s\": block name is not valid UTF-8", what, name);
}
