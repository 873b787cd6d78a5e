"""Fail the test run if it left shared memory blocks behind.

`start FILE` records the names in /dev/shm; `finish FILE` waits briefly for
trackers to finish their cleanup, then lists every name that appeared since
and is still there, removes them (so one failure does not poison the next
run) and exits 1 if there were any.
"""
import os
import sys
import time

SHM = "/dev/shm"


def names():
    return set(os.listdir(SHM))


def main():
    mode, state = sys.argv[1], sys.argv[2]
    if mode == "start":
        with open(state, "w") as f:
            f.write("\n".join(sorted(names())))
        print("leak check: recorded", len(names()), "existing names")
        return 0
    with open(state) as f:
        before = set(f.read().split("\n")) - {""}
    deadline = time.monotonic() + 10
    while True:
        left = sorted(names() - before)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        print("leak check: the tests left %d block(s): %s" % (len(left), " ".join(left[:50])))
        for n in left:
            try:
                os.unlink(os.path.join(SHM, n))
            except OSError:
                pass
        return 1
    print("leak check: no block left behind")
    return 0


if __name__ == "__main__":
    sys.exit(main())
