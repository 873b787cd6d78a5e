"""Compare pshm's literal parser, repr and equality with CPython's.

Thousands of values are generated here (random doubles from random bit
patterns, powers of two, ints at the int64 limits, random unicode and bytes,
every code point), written one literal per line, and fed to the helper
program values_roundtrip, which parses each line with pshm_value_parse and
prints pshm_value_repr. Its output must equal Python's repr line for line;
the helper itself checks that every repr parses back to an equal value.
"""
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
import unicodedata
import warnings

HELPER = os.environ["PSHM_HELPER_values_roundtrip"]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
rng = random.Random(20240611)
failures = []


def run_helper(mode, lines):
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt",
                                     delete=False) as f:
        f.write("".join(line + "\n" for line in lines))
        path = f.name
    try:
        proc = subprocess.run([HELPER, mode, path], capture_output=True,
                              encoding="utf-8", errors="surrogateescape")
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        failures.append(f"{mode}: helper exited {proc.returncode}: "
                        f"{proc.stderr[:2000]}")
    return proc.stdout.split("\n")[:-1]


def compare(title, sources, expected):
    """Each source literal must come back from pshm as the expected text."""
    got = run_helper("repr", sources)
    if len(got) != len(sources):
        failures.append(f"{title}: {len(got)} lines back for {len(sources)}")
        return
    bad = [(s, e, g) for s, e, g in zip(sources, expected, got) if e != g]
    for s, e, g in bad[:10]:
        failures.append(f"{title}: {s!r}: python {e!r}, pshm {g!r}")
    print(f"{title}: {len(sources)} literals, {len(bad)} mismatches")


def check_reprs(title, values):
    texts = [repr(v) for v in values]
    compare(title, texts, texts)


def random_double():
    (x,) = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))
    return x


def floats():
    values = [random_double() for _ in range(4000)]
    values += [math.ldexp(1.0, e) for e in range(-1074, 1024)]
    values += [math.ldexp(1.0, e) * m for e in range(-1074, 1000, 7)
               for m in (3, 5, 0.75, 1.5)]
    values += [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(52)))[0]
               for _ in range(500)]  # subnormals
    values += [rng.random() * 10 ** rng.randint(-30, 30) for _ in range(1000)]
    values += [round(rng.uniform(-1000, 1000), rng.randint(0, 6))
               for _ in range(1000)]
    values += [float(rng.randint(-(2**64), 2**64)) for _ in range(500)]
    values += [0.0, -0.0, math.inf, -math.inf, math.nan, 1e16, 1e15, 1e-4,
               1e-5, 9999999999999998.0, 1e22, 1e23, 0.1, 0.2, 0.3, 1 / 3,
               5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
               123456789012345680.0, 0.00012345, 1.5e300, -273.154, 2.0**53,
               2.0**63, -(2.0**63), 1e-4 * 9.999999, 1234567890123456.7]
    values = [v if rng.random() < 0.5 else -v for v in values]
    return values


def ints():
    values = [INT64_MIN, INT64_MAX, 0, -1, 1, 2**53, 2**53 + 1, -(2**53) - 1]
    values += [INT64_MAX - k for k in range(20)] + [INT64_MIN + k for k in range(20)]
    values += [rng.randint(INT64_MIN, INT64_MAX) for _ in range(2000)]
    values += [rng.randint(-(10 ** rng.randint(0, 18)), 10 ** rng.randint(0, 18))
               for _ in range(1000)]
    return values


CODE_POOLS = [
    (0x20, 0x7e), (0x00, 0x1f), (0x7f, 0xa0), (0xa0, 0x17f), (0x300, 0x36f),
    (0x370, 0x3ff), (0x2000, 0x206f), (0x1f300, 0x1faff), (0xe000, 0xe0ff),
    (0xfff0, 0xffff), (0xe0000, 0xe007f), (0x10fff0, 0x10ffff),
    (0x0, 0xd7ff), (0xe000, 0x10ffff),
]


def random_char():
    lo, hi = rng.choice(CODE_POOLS)
    c = rng.randint(lo, hi)
    return chr(c) if not 0xd800 <= c <= 0xdfff else "x"


def strs():
    values = ["", "'", '"', "'\"", "it's", 'say "hi"', "\\", "\t\n\r",
              "\x00\x7f\x85\xa0\xad", "\u2028\u2029", " ", "\u200b\ufeff",
              "e\u0301", "\U0001f600\U0001f1eb\U0001f1f7", "\ud7ff\ue000",
              "\U000e0001", "\U0010ffff", "\u0378", "\ufffe"]
    values += ["".join(random_char() for _ in range(rng.randint(0, 24)))
               for _ in range(3000)]
    values += ["".join(rng.choice("ab'\"\\ \t") for _ in range(rng.randint(0, 8)))
               for _ in range(500)]
    return values


def every_code_point():
    chars = [chr(c) for c in range(0x110000) if not 0xd800 <= c <= 0xdfff]
    return ["".join(chars[i:i + 64]) for i in range(0, len(chars), 64)]


def byte_strings():
    values = [b"", b"'", b'"', b"'\"", bytes(range(256))]
    values += [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 24)))
               for _ in range(2000)]
    values += [bytes(rng.choice(b"ab'\"\\ \t") for _ in range(rng.randint(0, 8)))
               for _ in range(500)]
    return values


def int_spellings(n):
    sign = "-" if n < 0 else rng.choice(["", "+"])
    m = abs(n)
    body = rng.choice([str(m), hex(m), oct(m), bin(m), f"{m:_}", "0x" + f"{m:_x}"])
    if body[:2] in ("0x", "0o", "0b") and rng.random() < 0.3:
        body = body[:2] + "_" + body[2:]
    if body.startswith("0x") and rng.random() < 0.5:
        body = body.upper().replace("0X", rng.choice(["0x", "0X"]))
    return sign + body


def float_spellings(x):
    forms = [repr(x), f"{x:.17e}", f"{x:.3E}", f"{x:.20f}", f"{x:#.25g}"]
    text = rng.choice(forms)
    if text[0].isdigit() and rng.random() < 0.3:
        text = "+" + text
    return rng.choice(["", " ", "\t"]) + text + rng.choice(["", " ", "  "])


def escape_char(c, in_bytes):
    o = ord(c)
    forms = [f"\\x{o:02x}" if o < 256 else None,
             f"\\{o:03o}" if o < (256 if in_bytes else 512) else None,
             None if in_bytes else f"\\u{o:04x}" if o < 0x10000 else None,
             None if in_bytes else f"\\U{o:08X}"]
    if c in "\a\b\f\n\r\t\v":
        forms.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(c)])
    forms = [f for f in forms if f is not None]
    return rng.choice(forms) if forms else c


def string_spelling(s, in_bytes):
    """A hand-made literal for s: random quote, prefix and escapes."""
    quote = rng.choice("'\"")
    out = []
    for c in (s.decode("latin-1") if in_bytes else s):
        o = ord(c)
        if c == quote or c == "\\":
            out.append("\\" + c)
        elif c in "\n\r\0" or (in_bytes and o >= 0x80) or rng.random() < 0.3:
            out.append(escape_char(c, in_bytes))
        else:
            out.append(c)
    prefix = rng.choice(["b", "B"]) if in_bytes else rng.choice(["", "", "u", "U"])
    return prefix + quote + "".join(out) + quote


def spelled_literals():
    """Literals as people write them, checked against Python's eval."""
    sources = [int_spellings(n) for n in ints()[:1500]]
    sources += [float_spellings(x) for x in floats()[:1500]
                if math.isfinite(x)]
    sources += [string_spelling(s, False) for s in strs()[:1500]]
    sources += [string_spelling(b, True) for b in byte_strings()[:1500]]
    sources += ["r'a\\b'", "R\"\\n\"", "rb'\\x00'", "Br'\\''",
                "'\\q\\%'", "b'\\u1234'", "'\\0'", "'\\1234'", "1_0.0_1e+0_1",
                "0_0", "00", "0.e0", ".5", "5.", "1E5", "0b1_0", "0O17",
                "1e400", "-1e400", "1e-400", "  None", "True  ", "False"]
    with warnings.catch_warnings():  # '\\q' is a deprecated escape
        warnings.simplefilter("ignore")
        expected = [repr(eval(s.strip())) for s in sources]
    compare("spelled literals", sources, expected)


def equality_pairs():
    big = [2**53, 2**53 + 1, 2**63 - 1, 2**63 - 512, 2**63 - 1024, -(2**63),
           -(2**63) + 1, 0, 1, -1, 2, 2**62]
    numbers = big + [float(b) for b in big] + [True, False, 0.0, -0.0, 1.0,
                                               0.5, math.nan, math.inf,
                                               -math.inf, 2.0**63, -(2.0**63),
                                               9223372036854774784.0]
    others = [None, "", "a", "1", b"", b"a", b"1", "True", "None"]
    values = numbers + others + [rng.choice(floats()[:100]) for _ in range(20)]
    pairs = [(a, b) for a in values for b in values]
    lines = [f"{a!r}\t{b!r}" for a, b in pairs]
    expected = [str(int(a == b)) for a, b in pairs]
    got = run_helper("equal", lines)
    bad = [(line, e, g) for line, e, g in zip(lines, expected, got) if e != g]
    if len(got) != len(lines):
        failures.append(f"equality: {len(got)} lines back for {len(lines)}")
    for line, e, g in bad[:10]:
        failures.append(f"equality: {line!r}: python {e}, pshm {g}")
    print(f"equality: {len(pairs)} pairs, {len(bad)} mismatches")


def refused_literals():
    """Text Python refuses (or pshm refuses on purpose) must be an error."""
    sources = ["", "   ", "'abc", "abc", "1__0", "_1", "1_", "0123", "1e",
               "0x", "0b2", "--1", "1 2", "'a' 'b'", "b'\\x4'", "'\\u12'",
               "'\\U00110000'", "'\\ud800'", "b'\u00e9'", "'\\N{BULLET}'",
               "infinity", "Inf", "NaN", "none", "1j", "9223372036854775808",
               "-9223372036854775809", "0x8000000000000000", "'''a'''", "f'x'",
               "'a\nb'", "'\\", "ub'x'", "[1]", "1.2.3", "0x1.8p1"]
    got = run_helper("repr", sources)
    bad = [(s, g) for s, g in zip(sources, got) if not g.startswith("ERROR parse")]
    for s, g in bad:
        failures.append(f"refused: {s!r} was accepted as {g!r}")
    print(f"refused: {len(sources)} literals, {len(bad)} accepted")


def main():
    print(f"python {sys.version.split()[0]}, unicode {unicodedata.unidata_version}")
    check_reprs("floats", floats())
    check_reprs("ints", ints() + [True, False, None])
    check_reprs("strs", strs())
    check_reprs("every code point", every_code_point())
    check_reprs("bytes", byte_strings())
    spelled_literals()
    equality_pairs()
    refused_literals()
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
