/*
 * values.c — the value type: equality, Python's repr(), Python literals,
 * and the string builder the repr and format code share.
 *
 * Everything here follows CPython 3.11: repr() output is byte for byte what
 * Python prints, and the parser accepts the literals Python's tokenizer
 * accepts for the six types (minus a few rarities refused with a clear
 * message: \N{...} escapes, triple quotes, implicit concatenation).
 *
 * Floats are formatted and parsed in the "C" locale (os_c_locale_enter), so a
 * program that called setlocale() still gets '.' as the decimal point.
 */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* String builder                                                            */
/* ------------------------------------------------------------------------ */

#define SB_MIN_CAP 64

/*
 * Make room for `extra` more bytes plus the terminating NUL. Invariant
 * (unless failed): data is NULL or cap > len. Returns false once failed.
 */
static bool sb_reserve(strbuf *sb, size_t extra)
{
    if (sb->failed)
        return false;
    if (extra >= SIZE_MAX - sb->len) {
        sb->failed = true;
        return false;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return true;
    size_t cap = sb->cap < SB_MIN_CAP ? SB_MIN_CAP : sb->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *data = realloc(sb->data, cap);
    if (data == NULL) {
        sb->failed = true;
        return false;
    }
    sb->data = data;
    sb->cap = cap;
    return true;
}

void sb_putc(strbuf *sb, char c)
{
    if (sb_reserve(sb, 1))
        sb->data[sb->len++] = c;
}

void sb_puts(strbuf *sb, const char *s, size_t n)
{
    if (n > 0 && sb_reserve(sb, n)) {
        memcpy(sb->data + sb->len, s, n);
        sb->len += n;
    }
}

void sb_printf(strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        sb->failed = true;
        return;
    }
    if (!sb_reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

int sb_finish(strbuf *sb, char **out, const char *what)
{
    bool ok = sb_reserve(sb, 0);
    if (ok) {
        sb->data[sb->len] = '\0';
        *out = sb->data;
    } else {
        free(sb->data);
    }
    *sb = (strbuf){0};
    if (!ok)
        return err_set(PSHM_ELIMIT, "%s: out of memory building the text", what);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Constructors and equality                                                 */
/* ------------------------------------------------------------------------ */

pshm_value pshm_str(const char *s) { return pshm_strn(s, s == NULL ? 0 : strlen(s)); }

static bool is_number(const pshm_value *v)
{
    return v->type == PSHM_INT || v->type == PSHM_FLOAT || v->type == PSHM_BOOL;
}

/* bool is an int subclass in Python: True is 1, False is 0. */
static int64_t as_int(const pshm_value *v)
{
    return v->type == PSHM_BOOL ? (int64_t)v->u.b : v->u.i;
}

/*
 * Exact comparison, as Python does it: no rounding of i to double (2**53+1
 * must differ from 2.0**53). Every int64 lies in [-2^63, 2^63); a double
 * inside that range with no fraction converts to int64 exactly. NaN fails
 * the range test.
 */
static bool int_equals_float(int64_t i, double f)
{
    if (!(f >= -0x1p63 && f < 0x1p63))
        return false;
    if (f != trunc(f))
        return false;
    return (int64_t)f == i;
}

static bool numbers_equal(const pshm_value *a, const pshm_value *b)
{
    bool a_float = a->type == PSHM_FLOAT, b_float = b->type == PSHM_FLOAT;
    if (a_float && b_float)
        return a->u.f == b->u.f;
    if (a_float)
        return int_equals_float(as_int(b), a->u.f);
    if (b_float)
        return int_equals_float(as_int(a), b->u.f);
    return as_int(a) == as_int(b);
}

static bool bytes_equal(const pshm_value *a, const pshm_value *b)
{
    if (a->u.s.len != b->u.s.len)
        return false;
    return a->u.s.len == 0 || memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
}

bool pshm_value_equal(const pshm_value *a, const pshm_value *b)
{
    if (a == NULL || b == NULL)
        return false;
    if (is_number(a) && is_number(b))
        return numbers_equal(a, b);
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case PSHM_NONE: return true;
    case PSHM_STR:
    case PSHM_BYTES: return bytes_equal(a, b);
    default: return false; /* an unknown type tag equals nothing */
    }
}

/* ------------------------------------------------------------------------ */
/* repr: floats                                                              */
/* ------------------------------------------------------------------------ */

/* Up to 17 significant digits always identify a double. */
#define DOUBLE_MAX_DIGITS 17

/* A positive decimal number 0.d1d2d3... * 10^(exp10 + 1), i.e. d1 is the
 * digit of 10^exp10 (never '0'); digits is NUL-terminated. */
typedef struct decimal {
    char digits[DOUBLE_MAX_DIGITS + 2];
    int ndigits;
    int exp10;
} decimal;

/* x (finite, > 0) correctly rounded to `sig` significant digits. */
static decimal decimal_nearest(double x, int sig)
{
    char text[48]; /* d.dddddddddddddddde-308 */
    snprintf(text, sizeof text, "%.*e", sig - 1, x);
    decimal d = {.ndigits = 0};
    const char *p = text;
    for (; *p != 'e'; p++)
        if (*p != '.')
            d.digits[d.ndigits++] = *p;
    d.exp10 = atoi(p + 1);
    d.digits[d.ndigits] = '\0';
    return d;
}

static double decimal_value(const decimal *d)
{
    char text[48];
    snprintf(text, sizeof text, "0.%se%d", d->digits, d->exp10 + 1);
    return strtod(text, NULL);
}

/* Add one unit in the last digit, keeping the digit count (9.99e0 becomes
 * 1.00e1). */
static void decimal_bump(decimal *d)
{
    int i = d->ndigits - 1;
    while (i >= 0 && d->digits[i] == '9')
        d->digits[i--] = '0';
    if (i >= 0) {
        d->digits[i]++;
    } else {
        d->digits[0] = '1';
        d->exp10++;
    }
}

/* Drop trailing zeros (1.50 -> 1.5), keeping at least one digit. */
static decimal decimal_trim(decimal d)
{
    while (d.ndigits > 1 && d.digits[d.ndigits - 1] == '0')
        d.ndigits--;
    d.digits[d.ndigits] = '\0';
    return d;
}

/*
 * The shortest decimal that reads back as x (x finite, > 0), as Python's
 * repr picks it (David Gay's shortest mode). Normally the correctly rounded
 * n-digit decimal is the n-digit candidate closest to x; but when x is a
 * power of two the gap to the next double below is half the gap above, so
 * the nearest n-digit decimal may miss below while its neighbour above
 * still reads back as x. That neighbour is then Python's choice.
 */
static decimal shortest_decimal(double x)
{
    decimal d = {.ndigits = 0};
    for (int sig = 1; sig <= DOUBLE_MAX_DIGITS; sig++) {
        d = decimal_nearest(x, sig);
        double back = decimal_value(&d);
        if (back == x)
            return decimal_trim(d);
        if (back < x) {
            decimal up = d;
            decimal_bump(&up);
            if (decimal_value(&up) == x)
                return decimal_trim(up);
        }
    }
    return d; /* 17 digits always read back; not reached */
}

static void put_zeros(strbuf *sb, int n)
{
    for (int i = 0; i < n; i++)
        sb_putc(sb, '0');
}

/* 1234.5, 0.00012, 1e+16 as Python's float_repr_style 'short' lays it out:
 * positional while -4 <= exp10 < 16, else scientific with >= 2 exponent
 * digits. */
static void decimal_layout(strbuf *sb, const decimal *d)
{
    if (d->exp10 < -4 || d->exp10 >= 16) {
        sb_putc(sb, d->digits[0]);
        if (d->ndigits > 1) {
            sb_putc(sb, '.');
            sb_puts(sb, d->digits + 1, (size_t)d->ndigits - 1);
        }
        sb_printf(sb, "e%+03d", d->exp10);
    } else if (d->exp10 < 0) {
        sb_puts(sb, "0.", 2);
        put_zeros(sb, -d->exp10 - 1);
        sb_puts(sb, d->digits, (size_t)d->ndigits);
    } else {
        int int_digits = d->exp10 + 1;
        int shown = d->ndigits < int_digits ? d->ndigits : int_digits;
        sb_puts(sb, d->digits, (size_t)shown);
        put_zeros(sb, int_digits - shown);
        sb_putc(sb, '.');
        if (d->ndigits > int_digits)
            sb_puts(sb, d->digits + int_digits, (size_t)(d->ndigits - int_digits));
        else
            sb_putc(sb, '0');
    }
}

static void float_repr_into(strbuf *sb, double f)
{
    if (isnan(f)) {
        sb_puts(sb, "nan", 3); /* Python prints every NaN as nan */
        return;
    }
    if (signbit(f))
        sb_putc(sb, '-');
    double x = fabs(f);
    if (isinf(x)) {
        sb_puts(sb, "inf", 3);
    } else if (x == 0) {
        sb_puts(sb, "0.0", 3);
    } else {
        os_locale saved = os_c_locale_enter();
        decimal d = shortest_decimal(x);
        os_c_locale_leave(saved);
        decimal_layout(sb, &d);
    }
}

/* ------------------------------------------------------------------------ */
/* repr: str and bytes                                                       */
/* ------------------------------------------------------------------------ */

/* Python's choice: single quotes unless the text has ' and no ". */
static char pick_quote(const char *s, size_t n)
{
    if (n > 0 && memchr(s, '\'', n) != NULL && memchr(s, '"', n) == NULL)
        return '"';
    return '\'';
}

/* The escapes str and bytes share; true if c was written as one. */
static bool put_common_escape(strbuf *sb, unsigned c, char quote)
{
    switch (c) {
    case '\\': sb_puts(sb, "\\\\", 2); return true;
    case '\t': sb_puts(sb, "\\t", 2); return true;
    case '\n': sb_puts(sb, "\\n", 2); return true;
    case '\r': sb_puts(sb, "\\r", 2); return true;
    default: break;
    }
    if (c == (unsigned char)quote) {
        sb_putc(sb, '\\');
        sb_putc(sb, quote);
        return true;
    }
    if (c < 0x20 || c == 0x7f) {
        sb_printf(sb, "\\x%02x", c);
        return true;
    }
    return false;
}

static void put_code_point(strbuf *sb, uint32_t uc, const uint8_t *bytes, int len)
{
    if (os_is_printable(uc))
        sb_puts(sb, (const char *)bytes, (size_t)len);
    else if (uc <= 0xff)
        sb_printf(sb, "\\x%02x", (unsigned)uc);
    else if (uc <= 0xffff)
        sb_printf(sb, "\\u%04x", (unsigned)uc);
    else
        sb_printf(sb, "\\U%08x", (unsigned)uc);
}

static int str_repr_into(strbuf *sb, const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    const uint8_t *bad = os_utf8_check(u, n);
    if (bad != NULL)
        return err_set(PSHM_ECORRUPT,
                       "repr: str is not valid UTF-8 (byte 0x%02x at offset %zu)", *bad,
                       (size_t)(bad - u));
    char quote = pick_quote(s, n);
    sb_putc(sb, quote);
    for (size_t i = 0; i < n;) {
        uint32_t uc;
        int len = os_utf8_decode(&uc, u + i, n - i);
        if (uc >= 0x80)
            put_code_point(sb, uc, u + i, len);
        else if (!put_common_escape(sb, uc, quote))
            sb_putc(sb, (char)uc);
        i += (size_t)len;
    }
    sb_putc(sb, quote);
    return 0;
}

static void bytes_repr_into(strbuf *sb, const char *s, size_t n)
{
    char quote = pick_quote(s, n);
    sb_putc(sb, 'b');
    sb_putc(sb, quote);
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        if (put_common_escape(sb, c, quote))
            continue;
        if (c >= 0x80)
            sb_printf(sb, "\\x%02x", c);
        else
            sb_putc(sb, (char)c);
    }
    sb_putc(sb, quote);
}

/* A str/bytes value's pointer may be NULL only when it describes no bytes. */
static bool has_bytes(const pshm_value *v) { return v->u.s.ptr != NULL || v->u.s.len == 0; }

int value_repr_into(strbuf *sb, const pshm_value *v)
{
    switch (v->type) {
    case PSHM_NONE: sb_puts(sb, "None", 4); return 0;
    case PSHM_BOOL:
        if (v->u.b)
            sb_puts(sb, "True", 4);
        else
            sb_puts(sb, "False", 5);
        return 0;
    case PSHM_INT: sb_printf(sb, "%" PRId64, v->u.i); return 0;
    case PSHM_FLOAT: float_repr_into(sb, v->u.f); return 0;
    case PSHM_STR:
        if (!has_bytes(v))
            return err_set(PSHM_EINVAL, "repr: str value has NULL bytes and length %zu",
                           v->u.s.len);
        return str_repr_into(sb, v->u.s.ptr, v->u.s.len);
    case PSHM_BYTES:
        if (!has_bytes(v))
            return err_set(PSHM_EINVAL, "repr: bytes value has NULL bytes and length %zu",
                           v->u.s.len);
        bytes_repr_into(sb, v->u.s.ptr, v->u.s.len);
        return 0;
    }
    return err_set(PSHM_EINVAL, "repr: unknown value type %d", (int)v->type);
}

int pshm_value_repr(const pshm_value *v, char **out)
{
    if (v == NULL || out == NULL)
        return err_set(PSHM_EINVAL, "repr: %s is NULL", v == NULL ? "value" : "out");
    strbuf sb = {0};
    int rc = value_repr_into(&sb, v);
    if (rc < 0) {
        free(sb.data);
        return rc;
    }
    return sb_finish(&sb, out, "repr");
}

/* ------------------------------------------------------------------------ */
/* Parsing Python literals                                                   */
/* ------------------------------------------------------------------------ */

/* How much of a bad literal an error message quotes. */
#define QUOTED_LITERAL_MAX 48

typedef struct parser {
    const char *literal; /* the whole input, quoted in error messages */
    const char *p;       /* next unread byte */
    const char *end;     /* the terminating NUL */
} parser;

/* Room for a quoted literal: every byte may become \xNN, plus "..." and NUL. */
#define QUOTED_LITERAL_CAP (4 * QUOTED_LITERAL_MAX + 4)

/* The literal for a message: C-escaped, cut (at a character boundary) after
 * QUOTED_LITERAL_MAX bytes. */
static void quote_literal(const char *literal, char out[QUOTED_LITERAL_CAP])
{
    size_t n = strlen(literal);
    size_t shown = n > QUOTED_LITERAL_MAX ? QUOTED_LITERAL_MAX : n;
    while (shown < n && shown > 0 && ((unsigned char)literal[shown] & 0xc0) == 0x80)
        shown--;
    char *o = out;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)literal[i];
        if (c == '\\' || c == '"')
            o += sprintf(o, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            o += sprintf(o, "\\x%02x", c);
        else
            *o++ = (char)c;
    }
    strcpy(o, shown < n ? "..." : "");
}

static int syntax_error(const parser *ps, const char *fmt, ...)
    __attribute__((format(OS_PRINTF, 2, 3)));

static int syntax_error(const parser *ps, const char *fmt, ...)
{
    char reason[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    char quoted[QUOTED_LITERAL_CAP];
    quote_literal(ps->literal, quoted);
    return err_set(PSHM_ESYNTAX, "parse \"%s\": %s", quoted, reason);
}

static int out_of_memory(const parser *ps)
{
    char quoted[QUOTED_LITERAL_CAP];
    quote_literal(ps->literal, quoted);
    return err_set(PSHM_ELIMIT, "parse \"%s\": out of memory", quoted);
}

static size_t offset(const parser *ps) { return (size_t)(ps->p - ps->literal); }

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

static void skip_space(parser *ps)
{
    while (is_space(*ps->p))
        ps->p++;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return 99; /* not a digit in any base we read */
}

/* ---- numbers ---- */

/*
 * Python's digitpart: digit (["_"] digit)*, in `base`. Appends the digits
 * (underscores dropped) to sb and counts them in *count (0 if none).
 * Returns 0, or PSHM_ESYNTAX for an underscore not between two digits.
 */
static int scan_digits(parser *ps, int base, strbuf *sb, size_t *count)
{
    *count = 0;
    for (;;) {
        if (*ps->p == '_' && *count > 0 && digit_value(ps->p[1]) < base) {
            ps->p++;
        } else if (*ps->p == '_') {
            return syntax_error(ps, "invalid underscore at offset %zu", offset(ps));
        }
        if (digit_value(*ps->p) >= base)
            return 0;
        sb_putc(sb, *ps->p);
        ps->p++;
        (*count)++;
    }
}

/* Accumulate digits into a magnitude of at most `limit`. */
static int digits_to_magnitude(parser *ps, const char *digits, size_t n, int base,
                               uint64_t limit, uint64_t *magnitude)
{
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = (uint64_t)digit_value(digits[i]);
        if (m > (limit - d) / (uint64_t)base)
            return syntax_error(ps, "integer does not fit in a signed 64-bit int");
        m = m * (uint64_t)base + d;
    }
    *magnitude = m;
    return 0;
}

static int make_int(parser *ps, bool negative, const strbuf *digits, int base,
                    pshm_value *out)
{
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t m = 0;
    int rc = digits_to_magnitude(ps, digits->data, digits->len, base, limit, &m);
    if (rc < 0)
        return rc;
    /* -m for m == 2^63 is INT64_MIN: negate in unsigned arithmetic. */
    *out = pshm_int(negative ? (int64_t)(0 - m) : (int64_t)m);
    return 0;
}

/* 0x..., 0o..., 0b... (the "0" and the letter already consumed). */
static int parse_prefixed_int(parser *ps, bool negative, int base, pshm_value *out)
{
    if (*ps->p == '_') /* Python allows one underscore right after the prefix */
        ps->p++;
    strbuf digits = {0};
    size_t count;
    int rc = scan_digits(ps, base, &digits, &count);
    if (rc == 0 && count == 0)
        rc = syntax_error(ps, "no digits after the base-%d prefix", base);
    if (rc == 0 && digits.failed)
        rc = out_of_memory(ps);
    if (rc == 0)
        rc = make_int(ps, negative, &digits, base, out);
    free(digits.data);
    return rc;
}

/* The exponent of a float: [eE] [+-] digitpart, appended to sb. */
static int scan_exponent(parser *ps, strbuf *sb)
{
    sb_putc(sb, 'e');
    ps->p++;
    if (*ps->p == '+' || *ps->p == '-')
        sb_putc(sb, *ps->p++);
    size_t count;
    int rc = scan_digits(ps, 10, sb, &count);
    if (rc == 0 && count == 0)
        return syntax_error(ps, "exponent has no digits");
    return rc;
}

/* The rest of a float after its integer digits: [. digitpart] [exponent]. */
static int scan_float_tail(parser *ps, strbuf *text, size_t int_digits)
{
    size_t frac_digits = 0;
    if (*ps->p == '.') {
        sb_putc(text, '.');
        ps->p++;
        int rc = scan_digits(ps, 10, text, &frac_digits);
        if (rc < 0)
            return rc;
    }
    if (int_digits + frac_digits == 0)
        return syntax_error(ps, "a number needs at least one digit");
    if (*ps->p == 'e' || *ps->p == 'E')
        return scan_exponent(ps, text);
    return 0;
}

static void make_float(bool negative, const strbuf *text, pshm_value *out)
{
    os_locale saved = os_c_locale_enter();
    /* Out-of-range literals become inf or 0 as in Python (1e400 is inf). */
    double f = strtod(text->data, NULL);
    os_c_locale_leave(saved);
    *out = pshm_float(negative ? -f : f);
}

/* True if the decimal digits have a forbidden leading zero (0123). */
static bool has_leading_zero(const strbuf *digits)
{
    if (digits->len < 2 || digits->data[0] != '0')
        return false;
    for (size_t i = 0; i < digits->len; i++)
        if (digits->data[i] != '0')
            return true;
    return false; /* 000 is a valid zero */
}

/* A decimal int or a float, the sign already consumed. */
static int parse_decimal(parser *ps, bool negative, pshm_value *out)
{
    strbuf text = {0};
    size_t int_digits;
    int rc = scan_digits(ps, 10, &text, &int_digits);
    bool is_float = *ps->p == '.' || *ps->p == 'e' || *ps->p == 'E';
    if (rc == 0 && is_float)
        rc = scan_float_tail(ps, &text, int_digits);
    else if (rc == 0 && int_digits == 0)
        rc = syntax_error(ps, "expected a literal at offset %zu", offset(ps));
    if (rc == 0 && (text.failed || !sb_reserve(&text, 0)))
        rc = out_of_memory(ps);
    if (rc == 0) {
        text.data[text.len] = '\0';
        if (is_float)
            make_float(negative, &text, out);
        else if (has_leading_zero(&text))
            rc = syntax_error(ps, "leading zeros in a decimal integer are not permitted");
        else
            rc = make_int(ps, negative, &text, 10, out);
    }
    free(text.data);
    return rc;
}

static int base_of_prefix(char letter)
{
    switch (letter) {
    case 'x':
    case 'X': return 16;
    case 'o':
    case 'O': return 8;
    case 'b':
    case 'B': return 2;
    default: return 0;
    }
}

/* Compare the identifier at p with `word`. */
static bool word_is(const char *p, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(p, word, len) == 0;
}

static size_t ident_length(const char *p)
{
    size_t n = 0;
    while (is_ident_char(p[n]))
        n++;
    return n;
}

/* [+-] then inf, nan, 0x/0o/0b int, decimal int or float. */
static int parse_number(parser *ps, pshm_value *out)
{
    bool negative = *ps->p == '-';
    if (*ps->p == '-' || *ps->p == '+')
        ps->p++;
    size_t len = ident_length(ps->p);
    if (word_is(ps->p, len, "inf") || word_is(ps->p, len, "nan")) {
        double f = ps->p[0] == 'i' ? INFINITY : NAN;
        ps->p += len;
        *out = pshm_float(negative ? -f : f);
        return 0;
    }
    int base = ps->p[0] == '0' ? base_of_prefix(ps->p[1]) : 0;
    if (base != 0) {
        ps->p += 2;
        return parse_prefixed_int(ps, negative, base, out);
    }
    return parse_decimal(ps, negative, out);
}

/* ---- strings ---- */

typedef struct string_kind {
    bool bytes;
    bool raw;
} string_kind;

/*
 * A string prefix (b, r, u, br, rb, any case) followed by a quote. Returns
 * the prefix length, or -1 if p does not start a string literal.
 */
static int string_prefix(const char *p, string_kind *kind)
{
    *kind = (string_kind){false, false};
    int n = 0;
    bool unicode = false;
    for (; n < 3 && (p[n] != '\'' && p[n] != '"'); n++) {
        char c = p[n];
        bool *flag = c == 'b' || c == 'B'   ? &kind->bytes
                     : c == 'r' || c == 'R' ? &kind->raw
                     : c == 'u' || c == 'U' ? &unicode
                                            : NULL;
        if (flag == NULL || *flag)
            return -1;
        *flag = true;
    }
    if (n == 3 || (unicode && (kind->bytes || kind->raw)))
        return -1;
    return n;
}

/* Read exactly `count` hex digits after an escape letter. */
static int read_hex(parser *ps, int count, const char *escape, uint32_t *value)
{
    uint32_t v = 0;
    for (int i = 0; i < count; i++) {
        int d = digit_value(ps->p[i]);
        if (d >= 16)
            return syntax_error(ps, "truncated %s escape at offset %zu", escape,
                                offset(ps) - 2);
        v = v * 16 + (uint32_t)d;
    }
    ps->p += count;
    *value = v;
    return 0;
}

/* Append code point uc (str) or byte uc (bytes, uc <= 0xff) to out. */
static void put_unit(string_kind kind, uint32_t uc, uint8_t *out, size_t *len)
{
    if (kind.bytes)
        out[(*len)++] = (uint8_t)uc;
    else
        *len += (size_t)os_utf8_encode(out + *len, uc, 4);
}

static int check_code_point(parser *ps, uint32_t uc, size_t at)
{
    if (uc > 0x10ffff)
        return syntax_error(ps, "escape at offset %zu is not a Unicode code point", at);
    if (uc >= 0xd800 && uc <= 0xdfff)
        return syntax_error(
            ps, "escape at offset %zu is a surrogate, which UTF-8 cannot hold", at);
    return 0;
}

static int simple_escape(char c)
{
    switch (c) {
    case '\\': return '\\';
    case '\'': return '\'';
    case '"': return '"';
    case 'a': return '\a';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'v': return '\v';
    default: return -1;
    }
}

/* \o, \oo, \ooo (p at the first digit). */
static int octal_escape(parser *ps, string_kind kind, uint32_t *value)
{
    size_t at = offset(ps) - 1;
    uint32_t v = 0;
    for (int i = 0; i < 3 && *ps->p >= '0' && *ps->p <= '7'; i++)
        v = v * 8 + (uint32_t)(*ps->p++ - '0');
    /* Python 3.11 silently keeps the low 8 bits of b'\777'; refuse instead. */
    if (kind.bytes && v > 0xff)
        return syntax_error(ps, "octal escape at offset %zu is above \\377 in bytes", at);
    *value = v;
    return 0;
}

/* \x, \u, \U (p after the letter). */
static int hex_escape(parser *ps, char letter, uint32_t *value)
{
    size_t at = offset(ps) - 2;
    int count = letter == 'x' ? 2 : letter == 'u' ? 4 : 8;
    const char *name = letter == 'x' ? "\\x" : letter == 'u' ? "\\u" : "\\U";
    int rc = read_hex(ps, count, name, value);
    if (rc == 0 && letter != 'x')
        rc = check_code_point(ps, *value, at);
    return rc;
}

/*
 * One escape sequence in a non-raw literal, p at the backslash. Python
 * keeps an unknown escape (\q, and \u or \N in bytes) as backslash + char.
 */
static int parse_escape(parser *ps, string_kind kind, uint8_t *out, size_t *len)
{
    char c = ps->p[1];
    int simple = simple_escape(c);
    uint32_t value = 0;
    int rc = 0;
    if (c == '\n') { /* backslash-newline: a line continuation, no text */
        ps->p += 2;
        return 0;
    }
    if (simple >= 0) {
        ps->p += 2;
        value = (uint32_t)simple;
    } else if (c >= '0' && c <= '7') {
        ps->p++;
        rc = octal_escape(ps, kind, &value);
    } else if (c == 'x' || (!kind.bytes && (c == 'u' || c == 'U'))) {
        ps->p += 2;
        rc = hex_escape(ps, c, &value);
    } else if (c == 'N' && !kind.bytes) {
        return syntax_error(ps, "\\N{...} escapes are not supported (offset %zu)",
                            offset(ps));
    } else {
        ps->p++;
        out[(*len)++] = '\\';
        return 0;
    }
    if (rc == 0)
        put_unit(kind, value, out, len);
    return rc;
}

/* One source character that is not a backslash or the closing quote. */
static int copy_char(parser *ps, string_kind kind, uint8_t *out, size_t *len)
{
    unsigned char c = (unsigned char)*ps->p;
    if (c == '\n' || c == '\r')
        return syntax_error(ps, "unterminated string: line break at offset %zu", offset(ps));
    if (c < 0x80) {
        out[(*len)++] = c;
        ps->p++;
        return 0;
    }
    if (kind.bytes)
        return syntax_error(
            ps, "bytes can only contain ASCII literal characters (offset %zu)", offset(ps));
    uint32_t uc;
    int n = os_utf8_decode_strict(&uc, (const uint8_t *)ps->p, (size_t)(ps->end - ps->p));
    if (n < 0)
        return syntax_error(ps, "invalid UTF-8 at offset %zu", offset(ps));
    memcpy(out + *len, ps->p, (size_t)n);
    *len += (size_t)n;
    ps->p += n;
    return 0;
}

/* In a raw literal a backslash stays, and the next ASCII character (even a
 * quote, backslash or line break) is taken as is. */
static void raw_backslash(parser *ps, uint8_t *out, size_t *len)
{
    out[(*len)++] = '\\';
    ps->p++;
    if (*ps->p != '\0' && (unsigned char)*ps->p < 0x80)
        out[(*len)++] = (uint8_t)*ps->p++;
}

/*
 * The body of a string literal up to the closing quote. Every escape is at
 * least as long as the UTF-8 it produces (\777: 4 bytes -> 2, \UXXXXXXXX:
 * 10 -> 4), so the rest of the input bounds the output size.
 */
static int parse_string_body(parser *ps, string_kind kind, char quote, pshm_value *out)
{
    uint8_t *buf = malloc((size_t)(ps->end - ps->p) + 1);
    if (buf == NULL)
        return out_of_memory(ps);
    size_t len = 0;
    int rc = 0;
    while (rc == 0 && *ps->p != quote) {
        if (*ps->p == '\0')
            rc = syntax_error(ps, "unterminated string: no closing %c", quote);
        else if (*ps->p == '\\' && kind.raw)
            raw_backslash(ps, buf, &len);
        else if (*ps->p == '\\')
            rc = ps->p[1] == '\0'
                     ? syntax_error(ps, "unterminated string: ends in a backslash")
                     : parse_escape(ps, kind, buf, &len);
        else
            rc = copy_char(ps, kind, buf, &len);
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    ps->p++; /* the closing quote */
    buf[len] = '\0';
    *out = kind.bytes ? pshm_bytes(buf, len) : pshm_strn((const char *)buf, len);
    return 0;
}

static int parse_string(parser *ps, int prefix_len, string_kind kind, pshm_value *out)
{
    ps->p += prefix_len;
    char quote = *ps->p++;
    if (ps->p[0] == quote && ps->p[1] == quote)
        return syntax_error(ps, "triple-quoted strings are not supported");
    return parse_string_body(ps, kind, quote, out);
}

/* ---- the literal ---- */

static int parse_word(parser *ps, pshm_value *out)
{
    size_t len = ident_length(ps->p);
    if (word_is(ps->p, len, "None"))
        *out = pshm_none();
    else if (word_is(ps->p, len, "True"))
        *out = pshm_bool(true);
    else if (word_is(ps->p, len, "False"))
        *out = pshm_bool(false);
    else if (word_is(ps->p, len, "inf") || word_is(ps->p, len, "nan"))
        return parse_number(ps, out);
    else
        return syntax_error(ps, "unknown name \"%.*s\"", (int)(len > 32 ? 32 : len), ps->p);
    ps->p += len;
    return 0;
}

static int parse_token(parser *ps, pshm_value *out)
{
    char c = *ps->p;
    if (c == '\0')
        return syntax_error(ps, "empty literal");
    string_kind kind;
    int prefix_len = string_prefix(ps->p, &kind);
    if (prefix_len >= 0)
        return parse_string(ps, prefix_len, kind, out);
    if (c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9'))
        return parse_number(ps, out);
    if (is_ident_char(c))
        return parse_word(ps, out);
    return syntax_error(ps, "unexpected character at offset %zu", offset(ps));
}

int pshm_value_parse(const char *literal, pshm_value *out)
{
    if (out == NULL)
        return err_set(PSHM_EINVAL, "parse: out is NULL");
    *out = pshm_none();
    if (literal == NULL)
        return err_set(PSHM_EINVAL, "parse: literal is NULL");
    parser ps = {literal, literal, literal + strlen(literal)};
    skip_space(&ps);
    pshm_value v;
    int rc = parse_token(&ps, &v);
    if (rc < 0)
        return rc;
    skip_space(&ps);
    if (*ps.p != '\0') {
        pshm_value_free(&v);
        return syntax_error(&ps, "unexpected text after the literal at offset %zu",
                            offset(&ps));
    }
    *out = v;
    return 0;
}

void pshm_value_free(pshm_value *v)
{
    if (v == NULL)
        return;
    if (v->type == PSHM_STR || v->type == PSHM_BYTES)
        free((void *)v->u.s.ptr);
    *v = pshm_none();
}

/* See internal.h: used by lists and the manager client alike. */
int value_check(const pshm_value *v, const char *what, const char *name, int64_t index)
{
    switch (v->type) {
    case PSHM_NONE:
    case PSHM_INT:
    case PSHM_FLOAT:
    case PSHM_BOOL: return 0;
    case PSHM_STR:
    case PSHM_BYTES: break;
    default:
        return err_set(PSHM_EINVAL, "%s \"%s\"[%lld]: unknown value type %d", what, name,
                       (long long)index, (int)v->type);
    }
    if (v->u.s.ptr == NULL && v->u.s.len > 0)
        return err_set(PSHM_EINVAL, "%s \"%s\"[%lld]: NULL pointer for %zu bytes", what, name,
                       (long long)index, v->u.s.len);
    if (v->type == PSHM_STR && v->u.s.len > 0 &&
        os_utf8_check((const uint8_t *)v->u.s.ptr, v->u.s.len) != NULL)
        return err_set(PSHM_EINVAL, "%s \"%s\"[%lld]: str value is not valid UTF-8", what,
                       name, (long long)index);
    return 0;
}
