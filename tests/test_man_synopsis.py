"""Every prototype in a section 3 page's SYNOPSIS (.Ft + .Fn, or .Ft + .Fo
.Fa ... .Fc) is the declaration in include/pshm.h, character for character
once spaces are dropped: return type, name, parameter types and names. Every
function pshm.h declares with PSHM_API appears in some SYNOPSIS."""
import glob
import os
import re
import shlex
import sys

SRC = os.environ["PSHM_SOURCE"]


def squash(text):
    return re.sub(r"\s+", "", text)


def header_prototypes():
    with open(os.path.join(SRC, "include", "pshm.h")) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    found = {}
    for ret, name, params in re.findall(r"PSHM_API\s+([^;(]*?)\b(pshm_\w+)\s*\((.*?)\)\s*;",
                                        text, flags=re.S):
        found[name] = squash(f"{ret}{name}({params})")
    return found


def page_prototypes(path):
    """(name, prototype) for each .Ft-led prototype in the SYNOPSIS."""
    out, ret, fo = [], None, None
    section = None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".Sh "):
                section = line[4:]
                continue
            if section != "SYNOPSIS":
                continue
            macro, _, rest = line.partition(" ")
            if macro == ".Ft":
                ret = rest
            elif macro == ".Fn" and ret is not None:
                name, *args = shlex.split(rest)
                out.append((name, squash(f"{ret}{name}({','.join(args)})")))
                ret = None
            elif macro == ".Fo" and ret is not None:
                fo = (rest, [])
            elif macro == ".Fa" and fo is not None:
                fo[1].extend(shlex.split(rest))
            elif macro == ".Fc" and fo is not None:
                out.append((fo[0], squash(f"{ret}{fo[0]}({','.join(fo[1])})")))
                ret, fo = None, None
    return out


def main():
    declared = header_prototypes()
    if not declared:
        print("FAIL: no PSHM_API declaration found in pshm.h")
        return 1
    failed, seen = 0, set()
    for path in sorted(glob.glob(os.path.join(SRC, "man", "man3", "*.3"))):
        for name, proto in page_prototypes(path):
            seen.add(name)
            if name not in declared:
                print(f"FAIL: {os.path.basename(path)}: {name} is not declared in pshm.h")
                failed += 1
            elif declared[name] != proto:
                print(f"FAIL: {os.path.basename(path)}: the synopsis of {name} differs "
                      f"from pshm.h:\n  page:   {proto}\n  header: {declared[name]}")
                failed += 1
    for name in sorted(set(declared) - seen):
        print(f"FAIL: {name} (pshm.h) has no prototype in any page's SYNOPSIS")
        failed += 1
    print(f"{len(declared)} declarations, {len(seen)} synopses, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
