/*
 * win_text — the Windows side of the platform interface (src/win/os.c) in
 * one process: UTF-8 checking, decoding and encoding as libunistring does
 * it on Linux, str.isprintable as Python 3.11 says for a sample of code
 * points, HMAC-SHA256 by CNG against RFC 4231, random bytes.
 */
#include "check.h"
#include "internal.h"

static void test_utf8(void)
{
    static const struct {
        const char *s;
        size_t n;
        long bad; /* offset of the first invalid byte, -1 if valid */
    } cases[] = {
        {"plain", 5, -1},
        {"h\xc3\xa9", 3, -1},
        {"\xe2\x9c\x93", 3, -1},
        {"\xf0\x9f\x98\x80", 4, -1},
        {"\xf4\x8f\xbf\xbf", 4, -1},
        {"a\x80", 2, 1},
        {"\xc0\xaf", 2, 0},
        {"\xe0\x80\xaf", 3, 0},
        {"\xed\xa0\x80", 3, 0},
        {"\xf4\x90\x80\x80", 4, 0},
        {"ab\xe2\x9c", 4, 2},
        {"\xff", 1, 0},
        {"\xf8\x88\x80\x80\x80", 5, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const uint8_t *s = (const uint8_t *)cases[i].s;
        const uint8_t *bad = os_utf8_check(s, cases[i].n);
        long got = bad == NULL ? -1 : (long)(bad - s);
        CHECK(got == cases[i].bad, "case %zu: first bad byte at %ld, want %ld", i, got,
              cases[i].bad);
    }
    uint32_t uc = 0;
    CHECK(os_utf8_decode_strict(&uc, (const uint8_t *)"\xe2\x9c", 2) == -2, "cut short");
    CHECK(os_utf8_decode_strict(&uc, (const uint8_t *)"\xed\xa0\x80", 3) == -1, "surrogate");
    CHECK(os_utf8_decode(&uc, (const uint8_t *)"\xf0\x9f\x98\x80", 4) == 4 && uc == 0x1f600,
          "U+1F600 decoded as %x", (unsigned)uc);
    const uint32_t points[] = {0x41, 0xe9, 0x7ff, 0x800, 0x2713, 0xffff, 0x10000, 0x10ffff};
    for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
        uint8_t buf[4];
        int len = os_utf8_encode(buf, points[i], sizeof buf);
        uint32_t back = 0;
        CHECK(len > 0 && os_utf8_decode_strict(&back, buf, (size_t)len) == len &&
                  back == points[i],
              "U+%04x does not round-trip (len %d, back %x)", (unsigned)points[i], len,
              (unsigned)back);
    }
}

/* What Python 3.11 says: chr(cp).isprintable(). */
static void test_printable(void)
{
    static const struct {
        uint32_t cp;
        bool printable;
    } cases[] = {
        {0xe9, true},    {0x2713, true},   {0x4e2d, true},   {0x1f600, true},
        {0x20000, true}, {0xe0100, true},  {0x85, false},    {0xa0, false},
        {0xad, false},   {0x378, false},   {0x200b, false},  {0x2028, false},
        {0x3000, false}, {0xe000, false},  {0xfeff, false},  {0xfffe, false},
        {0xdc80, false}, {0xe0001, false}, {0x40000, false}, {0x10fffd, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(os_is_printable(cases[i].cp) == cases[i].printable,
              "U+%04X: isprintable should be %d", (unsigned)cases[i].cp, cases[i].printable);
}

/* RFC 4231, test case 2, given in two parts. */
static void test_hmac(void)
{
    static const uint8_t want[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
        0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
        0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
    };
    os_bytes parts[] = {{"what do ya want ", 16}, {"for nothing?", 12}};
    uint8_t out[32];
    os_hmac_sha256(out, "Jefe", 4, parts, 2);
    CHECK(os_equal_ct(out, want, 32), "HMAC-SHA256 differs from RFC 4231");
    out[31] ^= 1;
    CHECK(!os_equal_ct(out, want, 32), "a changed MAC compares equal");
}

static void test_random(void)
{
    uint8_t a[16] = {0}, b[16] = {0};
    CHECK(os_random_bytes(a, sizeof a) == 0 && os_random_bytes(b, sizeof b) == 0,
          "BCryptGenRandom failed");
    CHECK(memcmp(a, b, sizeof a) != 0, "two draws of 16 random bytes are equal");
}

int main(void)
{
    test_utf8();
    test_printable();
    test_hmac();
    test_random();
    return check_report("win_text");
}
