/* test_values.c — values: equality, repr, literal parsing, ownership. */
#include "support.h"

#include "pshm.h"

#include <criterion/criterion.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* repr(v) must be `expected`; returns nothing, asserts. */
static void expect_repr(pshm_value v, const char *expected)
{
    char *text = NULL;
    int rc = pshm_value_repr(&v, &text);
    cr_assert_eq(rc, 0, "repr of type %d: %d %s", v.type, rc, pshm_last_error());
    cr_expect_str_eq(text, expected);
    free(text);
}

static pshm_value parse_ok(const char *literal)
{
    pshm_value v;
    int rc = pshm_value_parse(literal, &v);
    cr_assert_eq(rc, 0, "parse %s: %d %s", literal, rc, pshm_last_error());
    return v;
}

/* parse(literal) must fail with `code` and a message holding `needle`. */
static void expect_parse_error(const char *literal, int code, const char *needle)
{
    pshm_value v = pshm_int(7);
    int rc = pshm_value_parse(literal, &v);
    cr_expect_eq(rc, code, "parse %s: got %d (%s)", literal, rc, pshm_last_error());
    cr_expect_eq(v.type, PSHM_NONE, "parse %s: out not reset on error", literal);
    cr_expect(strstr(pshm_last_error(), needle) != NULL,
              "parse %s: message \"%s\" lacks \"%s\"", literal, pshm_last_error(), needle);
}

/* ---- equality ---- */

Test(equal, numbers_compare_by_exact_value)
{
    struct {
        pshm_value a, b;
        bool equal;
    } cases[] = {
        {pshm_int(1), pshm_float(1.0), true},
        {pshm_bool(true), pshm_int(1), true},
        {pshm_bool(true), pshm_float(1.0), true},
        {pshm_bool(false), pshm_float(-0.0), true},
        {pshm_bool(false), pshm_int(0), true},
        {pshm_bool(true), pshm_bool(false), false},
        {pshm_float(-0.0), pshm_int(0), true},
        {pshm_float(-0.0), pshm_float(0.0), true},
        {pshm_int((1LL << 53) + 1), pshm_float(9007199254740992.0), false},
        {pshm_int(1LL << 53), pshm_float(9007199254740992.0), true},
        {pshm_int(INT64_MAX), pshm_float(0x1p63), false},
        {pshm_int(INT64_MIN), pshm_float(-0x1p63), true},
        {pshm_int(INT64_MIN + 1), pshm_float(-0x1p63), false},
        {pshm_int(INT64_MAX - 511), pshm_float(0x1p63 - 1024), false},
        {pshm_int(INT64_MAX - 1023), pshm_float(0x1p63 - 1024), true},
        {pshm_int(INT64_MIN), pshm_float(-0x1p64), false},
        {pshm_int(2), pshm_float(2.5), false},
        {pshm_int(0), pshm_float(NAN), false},
        {pshm_float(NAN), pshm_float(NAN), false},
        {pshm_float(INFINITY), pshm_float(INFINITY), true},
        {pshm_int(INT64_MAX), pshm_float(INFINITY), false},
        {pshm_int(-5), pshm_int(-5), true},
        {pshm_int(-5), pshm_int(5), false},
        {pshm_none(), pshm_int(0), false},
        {pshm_none(), pshm_bool(false), false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        cr_expect_eq(pshm_value_equal(&cases[i].a, &cases[i].b), cases[i].equal, "case %zu",
                     i);
        cr_expect_eq(pshm_value_equal(&cases[i].b, &cases[i].a), cases[i].equal,
                     "case %zu swapped", i);
    }
}

Test(equal, strings_bytes_and_none)
{
    pshm_value abc = pshm_str("abc"), abc2 = pshm_strn("abcd", 3), abd = pshm_str("abd");
    pshm_value babc = pshm_bytes("abc", 3), empty_str = pshm_strn(NULL, 0);
    pshm_value empty_str2 = pshm_str(""), empty_bytes = pshm_bytes(NULL, 0);
    pshm_value nul = pshm_strn("a\0b", 3), nul2 = pshm_strn("a\0c", 3);
    pshm_value none = pshm_none(), none2 = pshm_none();
    cr_expect(pshm_value_equal(&abc, &abc2));
    cr_expect(!pshm_value_equal(&abc, &abd));
    cr_expect(!pshm_value_equal(&abc, &babc), "str never equals bytes");
    cr_expect(!pshm_value_equal(&empty_str, &empty_bytes));
    cr_expect(pshm_value_equal(&empty_str, &empty_str2));
    cr_expect(!pshm_value_equal(&nul, &nul2), "compared past the NUL");
    cr_expect(pshm_value_equal(&none, &none2));
    cr_expect(!pshm_value_equal(&none, &empty_str));
    cr_expect(!pshm_value_equal(NULL, &none));
    cr_expect_eq(pshm_str(NULL).u.s.len, 0);
}

/* ---- repr ---- */

Test(repr, ints_bools_none)
{
    expect_repr(pshm_int(0), "0");
    expect_repr(pshm_int(-42), "-42");
    expect_repr(pshm_int(INT64_MAX), "9223372036854775807");
    expect_repr(pshm_int(INT64_MIN), "-9223372036854775808");
    expect_repr(pshm_bool(true), "True");
    expect_repr(pshm_bool(false), "False");
    expect_repr(pshm_none(), "None");
}

Test(repr, floats_like_python)
{
    struct {
        double f;
        const char *text;
    } cases[] = {
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {1.0, "1.0"},
        {-273.154, "-273.154"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {2.0 / 3, "0.6666666666666666"},
        {1e16, "1e+16"},
        {1e15, "1000000000000000.0"},
        {9999999999999998.0, "9999999999999998.0"},
        {123456789012345680.0, "1.2345678901234568e+17"},
        {0.0001, "0.0001"},
        {0.00012345, "0.00012345"},
        {1e-05, "1e-05"},
        {1.5e+300, "1.5e+300"},
        {5e-324, "5e-324"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {1e22, "1e+22"},
        {1e23, "1e+23"},
        {0x1p-791, "7.678447687145631e-239"},
        {100.0, "100.0"},
        {1234.5, "1234.5"},
        {INFINITY, "inf"},
        {-INFINITY, "-inf"},
        {NAN, "nan"},
        {-NAN, "nan"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        expect_repr(pshm_float(cases[i].f), cases[i].text);
}

Test(repr, str_quotes_and_escapes)
{
    struct {
        const char *s;
        size_t n;
        const char *text;
    } cases[] = {
        {"", 0, "''"},
        {"howdy", 5, "'howdy'"},
        {"it's", 4, "\"it's\""},
        {"say \"hi\"", 8, "'say \"hi\"'"},
        {"'\"", 2, "'\\'\"'"},
        {"a\\b", 3, "'a\\\\b'"},
        {"\t\n\r", 3, "'\\t\\n\\r'"},
        {"\x01\x1f\x7f", 3, "'\\x01\\x1f\\x7f'"},
        {"a\0b", 3, "'a\\x00b'"},
        {"caf\xc3\xa9", 5, "'caf\xc3\xa9'"},                  /* é printable */
        {"\xc2\x85\xc2\xa0\xc2\xad", 6, "'\\x85\\xa0\\xad'"}, /* NEL, NBSP, soft hyphen */
        {"\xe2\x80\xa8", 3, "'\\u2028'"},                     /* line separator */
        {"\xe2\x80\x8b", 3, "'\\u200b'"},                     /* zero width space, Cf */
        {"\xef\xbf\xbe", 3, "'\\ufffe'"},                     /* noncharacter, Cn */
        {"\xee\x80\x80", 3, "'\\ue000'"},                     /* private use, Co */
        {"\xf0\x9f\x98\x80", 4, "'\xf0\x9f\x98\x80'"},        /* emoji */
        {"e\xcc\x81", 3, "'e\xcc\x81'"},                      /* combining accent, Mn */
        {"\xf3\xa0\x80\x81", 4, "'\\U000e0001'"},             /* language tag, Cf */
        {"\xf4\x8f\xbf\xbf", 4, "'\\U0010ffff'"},
        {"\xe3\x80\x80", 3, "'\\u3000'"}, /* ideographic space, Zs */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        expect_repr(pshm_strn(cases[i].s, cases[i].n), cases[i].text);
}

Test(repr, bytes_quotes_and_escapes)
{
    expect_repr(pshm_bytes("HoWdY", 5), "b'HoWdY'");
    expect_repr(pshm_bytes(NULL, 0), "b''");
    expect_repr(pshm_bytes("it's", 4), "b\"it's\"");
    expect_repr(pshm_bytes("'\"", 2), "b'\\'\"'");
    expect_repr(pshm_bytes("\\\t\n\r", 4), "b'\\\\\\t\\n\\r'");
    expect_repr(pshm_bytes("\x00\x1f\x7f\x80\xff ~", 7), "b'\\x00\\x1f\\x7f\\x80\\xff ~'");
    expect_repr(pshm_bytes("\xc3\xa9", 2), "b'\\xc3\\xa9'");
}

Test(repr, long_values_grow_the_buffer)
{
    enum { N = 100000 };
    char *raw = malloc(N);
    char *expected = malloc(4 * N + 4);
    cr_assert(raw != NULL && expected != NULL);
    char *e = expected;
    e += sprintf(e, "b'");
    for (size_t i = 0; i < N; i++) {
        raw[i] = (char)(i % 3 == 0 ? 0x80 + i % 64 : 'a' + i % 26);
        e += (unsigned char)raw[i] >= 0x80 ? sprintf(e, "\\x%02x", (unsigned char)raw[i])
                                           : sprintf(e, "%c", raw[i]);
    }
    sprintf(e, "'");
    expect_repr(pshm_bytes(raw, N), expected);
    free(raw);
    free(expected);
}

Test(repr, invalid_utf8_is_corrupt)
{
    const char *bad[] = {"\xff",  "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                         "ok\x80"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        pshm_value v = pshm_str(bad[i]);
        char *text = (char *)"untouched";
        cr_expect_eq(pshm_value_repr(&v, &text), PSHM_ECORRUPT, "case %zu", i);
        cr_expect_str_eq(text, "untouched");
        cr_expect(strstr(pshm_last_error(), "repr: str is not valid UTF-8") != NULL, "%s",
                  pshm_last_error());
    }
}

Test(repr, bad_arguments)
{
    char *text;
    pshm_value v = pshm_strn(NULL, 3);
    cr_expect_eq(pshm_value_repr(&v, &text), PSHM_EINVAL);
    cr_expect(strstr(pshm_last_error(), "NULL bytes and length 3") != NULL, "%s",
              pshm_last_error());
    v.type = (pshm_type)99;
    cr_expect_eq(pshm_value_repr(&v, &text), PSHM_EINVAL);
    cr_expect(strstr(pshm_last_error(), "unknown value type 99") != NULL);
    cr_expect_eq(pshm_value_repr(NULL, &text), PSHM_EINVAL);
    cr_expect_eq(pshm_value_repr(&v, NULL), PSHM_EINVAL);
}

Test(repr, decimal_point_ignores_the_locale)
{
    if (setlocale(LC_ALL, "de_DE.UTF-8") == NULL && setlocale(LC_ALL, "fr_FR.UTF-8") == NULL)
        cr_skip_test("no locale with a decimal comma installed");
    expect_repr(pshm_float(1.5), "1.5");
    pshm_value v = parse_ok("2.25");
    cr_expect_eq(v.u.f, 2.25);
    setlocale(LC_ALL, "C");
}

/* ---- parse: accepted ---- */

Test(parse, numbers)
{
    struct {
        const char *literal;
        pshm_value v;
    } cases[] = {
        {"0", pshm_int(0)},
        {"-0", pshm_int(0)},
        {"00", pshm_int(0)},
        {"0_0", pshm_int(0)},
        {"42", pshm_int(42)},
        {"+42", pshm_int(42)},
        {"-42", pshm_int(-42)},
        {"1_000_000", pshm_int(1000000)},
        {"0x_ff", pshm_int(255)},
        {"0XfF", pshm_int(255)},
        {"-0x10", pshm_int(-16)},
        {"0o17", pshm_int(15)},
        {"0O1_7", pshm_int(15)},
        {"0b1010", pshm_int(10)},
        {"0B_1_0", pshm_int(2)},
        {"9223372036854775807", pshm_int(INT64_MAX)},
        {"-9223372036854775808", pshm_int(INT64_MIN)},
        {"0x7fffffffffffffff", pshm_int(INT64_MAX)},
        {"-0x8000000000000000", pshm_int(INT64_MIN)},
        {"1.5", pshm_float(1.5)},
        {"-1.5", pshm_float(-1.5)},
        {".5", pshm_float(0.5)},
        {"5.", pshm_float(5.0)},
        {"1e3", pshm_float(1000.0)},
        {"1E+3", pshm_float(1000.0)},
        {"1.e-3", pshm_float(0.001)},
        {"0123.5", pshm_float(123.5)},
        {"0e0", pshm_float(0.0)},
        {"1_0.2_5e0_1", pshm_float(102.5)},
        {"1e400", pshm_float(INFINITY)},
        {"-1e400", pshm_float(-INFINITY)},
        {"1e-400", pshm_float(0.0)},
        {"5e-324", pshm_float(5e-324)},
        {"inf", pshm_float(INFINITY)},
        {"+inf", pshm_float(INFINITY)},
        {"-inf", pshm_float(-INFINITY)},
        {"1.7976931348623157e+308", pshm_float(1.7976931348623157e308)},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        pshm_value v = parse_ok(cases[i].literal);
        cr_expect_eq(v.type, cases[i].v.type, "%s: type %d", cases[i].literal, v.type);
        cr_expect(pshm_value_equal(&v, &cases[i].v), "%s", cases[i].literal);
    }
    pshm_value neg_zero = parse_ok("-0.0");
    cr_expect(neg_zero.type == PSHM_FLOAT && signbit(neg_zero.u.f));
    pshm_value nan = parse_ok(" -nan ");
    cr_expect(nan.type == PSHM_FLOAT && isnan(nan.u.f));
}

Test(parse, words_and_whitespace)
{
    pshm_value v = parse_ok("None");
    cr_expect_eq(v.type, PSHM_NONE);
    v = parse_ok(" \t\nTrue\r\n ");
    cr_expect(v.type == PSHM_BOOL && v.u.b);
    v = parse_ok("False");
    cr_expect(v.type == PSHM_BOOL && !v.u.b);
}

/* parse(literal) must give a str (or bytes) with exactly these n bytes. */
static void expect_text(const char *literal, pshm_type type, const char *bytes, size_t n)
{
    pshm_value v = parse_ok(literal);
    cr_expect_eq(v.type, type, "%s: type %d", literal, v.type);
    cr_expect_eq(v.u.s.len, n, "%s: length %zu, not %zu", literal, v.u.s.len, n);
    if (v.u.s.len == n)
        cr_expect_eq(memcmp(v.u.s.ptr, bytes, n), 0, "%s: wrong bytes", literal);
    pshm_value_free(&v);
    cr_expect_eq(v.type, PSHM_NONE, "free must reset the value");
}

Test(parse, strings)
{
    expect_text("'howdy'", PSHM_STR, "howdy", 5);
    expect_text("\"it's\"", PSHM_STR, "it's", 4);
    expect_text("''", PSHM_STR, "", 0);
    expect_text("u'x'", PSHM_STR, "x", 1);
    expect_text("'\\\\\\'\\\"\\a\\b\\f\\n\\r\\t\\v'", PSHM_STR, "\\'\"\a\b\f\n\r\t\v", 10);
    expect_text("'\\0\\7\\101\\1011'", PSHM_STR, "\0\aAA1", 5);
    expect_text("'\\777'", PSHM_STR, "\xc7\xbf", 2);
    expect_text("'\\x41\\xe9'", PSHM_STR, "A\xc3\xa9", 3);
    expect_text("'\\u00e9\\u20AC'", PSHM_STR, "\xc3\xa9\xe2\x82\xac", 5);
    expect_text("'\\U0001F600'", PSHM_STR, "\xf0\x9f\x98\x80", 4);
    expect_text("'caf\xc3\xa9 \xf0\x9f\x98\x80'", PSHM_STR, "caf\xc3\xa9 \xf0\x9f\x98\x80",
                10);
    expect_text("'\\q\\%'", PSHM_STR, "\\q\\%", 4);
    expect_text("'a\\\nb'", PSHM_STR, "ab", 2);
    expect_text("'tab\there'", PSHM_STR, "tab\there", 8);
    expect_text("r'a\\nb\\''", PSHM_STR, "a\\nb\\'", 6);
    expect_text("R\"\\\\\"", PSHM_STR, "\\\\", 2);
    expect_text("r'\\\xc3\xa9'", PSHM_STR, "\\\xc3\xa9", 3);
}

Test(parse, bytes)
{
    expect_text("b'HoWdY'", PSHM_BYTES, "HoWdY", 5);
    expect_text("B\"it's\"", PSHM_BYTES, "it's", 4);
    expect_text("b''", PSHM_BYTES, "", 0);
    expect_text("b'\\x00\\xff\\377\\0'", PSHM_BYTES, "\0\xff\xff\0", 4);
    expect_text("b'\\u1234\\N'", PSHM_BYTES, "\\u1234\\N", 8);
    expect_text("rb'\\x00'", PSHM_BYTES, "\\x00", 4);
    expect_text("Br'\\''", PSHM_BYTES, "\\'", 2);
}

Test(parse, repr_round_trips)
{
    const char *literals[] = {"'\\x00\\x7f\\u2028\\U000e0001'",
                              "b'\\x00\\xff'",
                              "\"'\"",
                              "'\\'\"'",
                              "-0.0",
                              "5e-324",
                              "1e+16",
                              "-9223372036854775808"};
    for (size_t i = 0; i < ARRAY_LEN(literals); i++) {
        pshm_value v = parse_ok(literals[i]);
        char *text;
        cr_assert_eq(pshm_value_repr(&v, &text), 0, "%s", pshm_last_error());
        cr_expect_str_eq(text, literals[i]);
        free(text);
        pshm_value_free(&v);
    }
}

/* ---- parse: refused ---- */

Test(parse, refused_numbers)
{
    expect_parse_error("9223372036854775808", PSHM_ESYNTAX,
                       "does not fit in a signed 64-bit int");
    expect_parse_error("-9223372036854775809", PSHM_ESYNTAX, "does not fit");
    expect_parse_error("0x10000000000000000", PSHM_ESYNTAX, "does not fit");
    expect_parse_error("99999999999999999999999", PSHM_ESYNTAX, "does not fit");
    expect_parse_error("0123", PSHM_ESYNTAX, "leading zeros");
    expect_parse_error("1__0", PSHM_ESYNTAX, "invalid underscore at offset 1");
    expect_parse_error("1_", PSHM_ESYNTAX, "invalid underscore");
    expect_parse_error("1_.5", PSHM_ESYNTAX, "invalid underscore");
    expect_parse_error("1._5", PSHM_ESYNTAX, "invalid underscore");
    expect_parse_error("0x__1", PSHM_ESYNTAX, "invalid underscore");
    expect_parse_error("_1", PSHM_ESYNTAX, "unknown name \"_1\"");
    expect_parse_error("0x", PSHM_ESYNTAX, "no digits after the base-16 prefix");
    expect_parse_error("0b2", PSHM_ESYNTAX, "no digits after the base-2 prefix");
    expect_parse_error("1e", PSHM_ESYNTAX, "exponent has no digits");
    expect_parse_error("1e+", PSHM_ESYNTAX, "exponent has no digits");
    expect_parse_error(".", PSHM_ESYNTAX, "at least one digit");
    expect_parse_error("-", PSHM_ESYNTAX, "expected a literal at offset 1");
    expect_parse_error("--1", PSHM_ESYNTAX, "expected a literal");
    expect_parse_error("1j", PSHM_ESYNTAX, "unexpected text after the literal at offset 1");
    expect_parse_error("1 2", PSHM_ESYNTAX, "unexpected text");
    expect_parse_error("1.2.3", PSHM_ESYNTAX, "unexpected text");
    expect_parse_error("0x1.8p1", PSHM_ESYNTAX, "unexpected text");
    expect_parse_error("infinity", PSHM_ESYNTAX, "unknown name");
    expect_parse_error("-infinity", PSHM_ESYNTAX, "expected a literal");
    expect_parse_error("Inf", PSHM_ESYNTAX, "unknown name \"Inf\"");
    expect_parse_error("NaN", PSHM_ESYNTAX, "unknown name");
}

Test(parse, refused_strings)
{
    expect_parse_error("b'\\x4'", PSHM_ESYNTAX, "parse \"b'\\\\x4'\": truncated \\x escape");
    expect_parse_error("'\\x'", PSHM_ESYNTAX, "truncated \\x escape at offset 1");
    expect_parse_error("'\\u12'", PSHM_ESYNTAX, "truncated \\u escape");
    expect_parse_error("'\\U0001F60'", PSHM_ESYNTAX, "truncated \\U escape");
    expect_parse_error("'\\U00110000'", PSHM_ESYNTAX, "not a Unicode code point");
    expect_parse_error("'\\ud800'", PSHM_ESYNTAX, "surrogate");
    expect_parse_error("'\\U0000DFFF'", PSHM_ESYNTAX, "surrogate");
    expect_parse_error("'\xed\xa0\x80'", PSHM_ESYNTAX, "invalid UTF-8 at offset 1");
    expect_parse_error("'\xff'", PSHM_ESYNTAX, "invalid UTF-8");
    expect_parse_error("'\xc3'", PSHM_ESYNTAX, "invalid UTF-8");
    expect_parse_error("b'\xc3\xa9'", PSHM_ESYNTAX, "bytes can only contain ASCII");
    expect_parse_error("b'\\400'", PSHM_ESYNTAX, "above \\377 in bytes");
    expect_parse_error("'\\N{BULLET}'", PSHM_ESYNTAX, "\\N{...} escapes are not supported");
    expect_parse_error("'abc", PSHM_ESYNTAX, "unterminated string: no closing '");
    expect_parse_error("\"abc'", PSHM_ESYNTAX, "no closing \"");
    expect_parse_error("'abc\\", PSHM_ESYNTAX, "ends in a backslash");
    expect_parse_error("r'abc\\'", PSHM_ESYNTAX, "unterminated");
    expect_parse_error("'a\nb'", PSHM_ESYNTAX, "line break at offset 2");
    expect_parse_error("'a\rb'", PSHM_ESYNTAX, "line break");
    expect_parse_error("'''a'''", PSHM_ESYNTAX, "triple-quoted");
    expect_parse_error("'a' 'b'", PSHM_ESYNTAX,
                       "unexpected text after the literal at offset 4");
    expect_parse_error("ub'x'", PSHM_ESYNTAX, "unknown name \"ub\"");
    expect_parse_error("f'x'", PSHM_ESYNTAX, "unknown name \"f\"");
    expect_parse_error("bb'x'", PSHM_ESYNTAX, "unknown name");
}

Test(parse, refused_other)
{
    expect_parse_error("", PSHM_ESYNTAX, "parse \"\": empty literal");
    expect_parse_error(" \t\n", PSHM_ESYNTAX, "empty literal");
    expect_parse_error("none", PSHM_ESYNTAX, "unknown name \"none\"");
    expect_parse_error("True False", PSHM_ESYNTAX, "unexpected text");
    expect_parse_error("[1]", PSHM_ESYNTAX, "unexpected character at offset 0");
    expect_parse_error("\x01", PSHM_ESYNTAX, "parse \"\\x01\": unexpected character");
    expect_parse_error(NULL, PSHM_EINVAL, "parse: literal is NULL");
    cr_expect_eq(pshm_value_parse("1", NULL), PSHM_EINVAL);
}

Test(parse, long_literals_are_cut_in_messages)
{
    char literal[300];
    memset(literal, 'x', sizeof literal - 1);
    literal[sizeof literal - 1] = '\0';
    literal[0] = '\'';
    expect_parse_error(literal, PSHM_ESYNTAX, "xxx...\": unterminated string");
    cr_expect_lt(strlen(pshm_last_error()), 120u, "%s", pshm_last_error());
}

/* ---- ownership ---- */

Test(free, safe_on_everything_parse_fills)
{
    pshm_value v = parse_ok("42");
    pshm_value_free(&v);
    cr_expect_eq(v.type, PSHM_NONE);
    pshm_value_free(&v); /* twice: now None, a no-op */
    pshm_value_free(NULL);
    pshm_value failed;
    cr_expect_eq(pshm_value_parse("'open", &failed), PSHM_ESYNTAX);
    pshm_value_free(&failed); /* a failed parse leaves None */
    v = parse_ok("''");
    cr_expect(v.u.s.ptr != NULL);
    pshm_value_free(&v);
}
