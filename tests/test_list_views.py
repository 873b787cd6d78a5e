"""Typed views and same-type get/set against CPython's ShareableList.

The list_tool helper runs an "ops" session (one command per line on its
stdin, one answer line each) on a list that CPython also holds, so what C
writes through a view CPython reads, a type change CPython makes is seen
by the C side's view check, and random sequences of operations (gets,
sets, the typed pshm_list_get_int/_float and set_int/_float, views)
applied to a C-driven list and to a CPython twin leave the two blocks
byte-identical.

Lists are made by CPython here; the C side only attaches (untracked).
"""
import os
import random
import subprocess
import unittest
from multiprocessing.shared_memory import ShareableList

TOOL = os.environ["PSHM_HELPER_list_tool"]
_counter = 0


def fresh_name():
    global _counter
    _counter += 1
    return "pshmt_%d_%d_views" % (os.getpid(), _counter)


def block_bytes(name):
    with open(os.path.join("/dev/shm", name), "rb") as f:
        return f.read()


class Session:
    """A running "list_tool ops NAME": send one command, get its answer."""

    def __init__(self, name):
        self.proc = subprocess.Popen([TOOL, "ops", name], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def __call__(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise AssertionError("list_tool ops ended at %r (status %s)"
                                 % (command, self.proc.wait(timeout=10)))
        return answer.rstrip("\n")

    def close(self):
        self.proc.stdin.close()
        status = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        if status != 0:
            raise AssertionError("list_tool ops exited with %d" % status)


class Views(unittest.TestCase):
    def python_list(self, values):
        sl = ShareableList(values, name=fresh_name())
        self.addCleanup(sl.shm.unlink)
        self.addCleanup(sl.shm.close)
        return sl

    def session(self, sl):
        s = Session(sl.shm.name)
        self.addCleanup(s.close)
        return s

    def test_writes_through_views_read_back_in_cpython(self):
        start = [0, 1, 2, 3, 0.5, 1.5, -2.0]
        sl, twin = self.python_list(start), self.python_list(start)
        ops = self.session(sl)
        self.assertEqual(ops("view int 0 4"), "ok")
        ints = [2**63 - 1, -2**63, 0, -1]
        for k, value in enumerate(ints):
            self.assertEqual(ops("vset %d %r" % (k, value)), "ok")
            twin[k] = value
        self.assertEqual(ops("view float 4 3"), "ok")
        floats = [float("-inf"), -0.0, 5e-324]
        for k, value in enumerate(floats):
            self.assertEqual(ops("vset %d %r" % (k, value)), "ok")
            twin[4 + k] = value
        self.assertEqual(ops("check"), "ok")
        self.assertEqual(list(sl), ints + floats)
        self.assertEqual(repr(sl[5]), "-0.0")
        self.assertEqual(sl.format, twin.format)
        self.assertEqual(block_bytes(sl.shm.name), block_bytes(twin.shm.name))

    def test_mixed_range_is_refused_naming_the_first_other_item(self):
        sl = self.python_list([1, 2, 3.0, "four", 5])
        ops = self.session(sl)
        out = ops("view int 0 5")
        self.assertTrue(out.startswith("error ETYPE: "), out)
        self.assertIn('view "%s"[2]: the item is a float in 8 bytes' % sl.shm.name, out)
        self.assertIn("[3]: the item is a str", ops("view float 2 2"))
        self.assertEqual(ops("view int 0 2"), "ok")
        self.assertIn("ERANGE", ops("view int 4 2"))

    def test_check_sees_a_type_change_made_by_cpython(self):
        sl = self.python_list(list(range(10)))
        ops = self.session(sl)
        self.assertEqual(ops("view int 2 6"), "ok")
        sl[9] = "outside"            # not in the view's range
        sl[3] = 33                   # same type: the view holds
        self.assertEqual(ops("check"), "ok")
        self.assertEqual(ops("get 3"), "33")
        sl[6] = "a str"
        out = ops("check")
        self.assertTrue(out.startswith("error ETYPE: "), out)
        self.assertIn('view_check "%s"[6]: the item is a str' % sl.shm.name, out)
        sl[6] = 6.0
        self.assertIn("[6]: the item is a float", ops("check"))
        sl[6] = 6                    # changed back: the view holds again
        self.assertEqual(ops("check"), "ok")

    # ---- property: pshm and CPython apply the same random operations ----

    VALUES = [0, 1, -7, 2**63 - 1, -2**63, 0.25, -0.0, float("inf"), 1e-300, True, False,
              None, "", "a", "seven!!", b"", b"\x00\x01", b"8 bytes!"]

    def random_value(self, rng):
        """Mostly ints and floats, so that views often succeed."""
        pick = rng.random()
        if pick < 0.4:
            return rng.randrange(-2**63, 2**63)
        if pick < 0.6:
            return rng.uniform(-1e300, 1e300)
        return rng.choice(self.VALUES)

    TYPED = {"iget": int, "fget": float, "iset": int, "fset": float}

    def random_number(self, rng, typ):
        if typ is int:
            return rng.randrange(-2**63, 2**63)
        return rng.choice([rng.uniform(-1e300, 1e300), -0.0, float("inf"), 5e-324])

    def random_op(self, rng, n):
        """(command for list_tool, function applying it to the twin, expect).
        iget/fget/iset/fset are the typed calls (pshm_list_get_int...): a
        typed get of another type is ETYPE, a typed set is CPython's set."""
        kind = rng.choice(["set", "set", "get", "view", "iget", "fget", "iset", "fset"])
        index = rng.randrange(-n, n)
        if kind == "get":
            return "get %d" % index, lambda twin: repr(twin[index])
        if kind in ("iget", "fget"):
            typ = self.TYPED[kind]
            return "%s %d" % (kind, index), lambda twin: (
                repr(twin[index]) if type(twin[index]) is typ else "ETYPE [%d]" % index)
        if kind in ("set", "iset", "fset"):
            value = (self.random_value(rng) if kind == "set"
                     else self.random_number(rng, self.TYPED[kind]))

            def apply(twin):
                try:
                    twin[index] = value
                except ValueError:   # str/bytes too long for the item
                    return "ETOOBIG"
                return "ok"
            return "%s %d %r" % (kind, index, value), apply
        start = rng.randrange(n)
        count = rng.randrange(min(n - start, 4) + 1)
        typ = rng.choice([int, float])
        values = [rng.randrange(-2**63, 2**63) if typ is int else rng.uniform(-1e9, 1e9)
                  for _ in range(count)]
        return ("view %s %d %d" % (typ.__name__, start, count),
                lambda twin: self.view_twin(twin, typ, start, values), values)

    @staticmethod
    def view_twin(twin, typ, start, values):
        """What a view of `typ` over the range answers, and its writes."""
        for k in range(len(values)):
            item = twin[start + k]
            if type(item) is not typ or twin._allocated_offsets[start + k + 1] - \
                    twin._allocated_offsets[start + k] != 8:
                return "ETYPE [%d]" % (start + k)
        for k, value in enumerate(values):
            twin[start + k] = value
        return "ok"

    def run_sequence(self, seed, steps=1000):
        rng = random.Random(seed)
        start = [self.random_value(rng) for _ in range(12)]
        # Every str/bytes is allocated 8 or 16 bytes, so type changes fit.
        start[rng.randrange(12)] = "sixteen bytes.."
        sl, twin = self.python_list(start), self.python_list(start)
        ops = self.session(sl)
        for step in range(steps):
            op = self.random_op(rng, len(start))
            want = op[1](twin)
            got = ops(op[0])
            where = "seed %d step %d: %s" % (seed, step, op[0])
            if want.startswith("ETYPE"):
                self.assertTrue(got.startswith("error ETYPE: "), where + " -> " + got)
                self.assertIn(want.split()[1] + ": the item is", got, where)
            elif want == "ETOOBIG":
                self.assertTrue(got.startswith("error ETOOBIG: "), where + " -> " + got)
            else:
                self.assertEqual(got, want, where)
            if len(op) == 3 and got == "ok":
                for k, value in enumerate(op[2]):
                    self.assertEqual(ops("vset %d %r" % (k, value)), "ok", where)
                self.assertEqual(ops("check"), "ok", where)
            self.assertEqual(block_bytes(sl.shm.name), block_bytes(twin.shm.name), where)

    def test_random_operations_match_cpython_byte_for_byte(self):
        seeds = [20261204] + [random.randrange(2**32) for _ in range(3)]
        print("test_random_operations: seeds %s (rerun one with "
              "PSHM_VIEWS_SEED=<seed>)" % seeds, flush=True)
        if os.environ.get("PSHM_VIEWS_SEED"):
            seeds = [int(os.environ["PSHM_VIEWS_SEED"])]
        for seed in seeds:
            with self.subTest(seed=seed):
                self.run_sequence(seed)


if __name__ == "__main__":
    unittest.main(verbosity=2)
