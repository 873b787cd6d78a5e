"""CPython's own unit tests for multiprocessing.shared_memory, run on pshm.

Runs the `_TestSharedMemory` class of this interpreter's
Lib/test/_test_multiprocessing.py in its 'processes' flavour under the fork
start method, exactly as test_multiprocessing_fork instantiates it
(install_tests_in_module_dict + setUpModule/tearDownModule), with
`multiprocessing.shared_memory` and
`multiprocessing.managers.SharedMemoryManager` swapped for pshm's before the
test module imports them. The test code is not modified. Python children
the tests start (script_helper.assert_python_ok, subprocess.Popen of
sys.executable, which pass -I / -E and so ignore PYTHONPATH) get the same
swap through a sitecustomize module on their PYTHONPATH, so that they test
pshm too rather than CPython.

With PSHM_TEST_MODULE=cpython nothing is swapped and every test must pass:
a check of this runner.

Prints each test's outcome and the list of expected failures (pshm's
deliberate differences, below); fails if a test fails unexpectedly or an
expected failure passes. Skips, with the reason printed, where the
interpreter has no test package.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from pkgresult import Result, summary

CPYTHON = os.environ.get("PSHM_TEST_MODULE", "pshm") == "cpython"

# The tests pshm is expected to fail, each a deliberate difference from
# CPython (documented in the package's docs), with the reason.
EXPECTED_FAILURES = {
    # It sends SIGINT to `smm._process.pid`: CPython's manager is a
    # multiprocessing.Process child of the starter. pshm's manager is a
    # libpshm server (pshm_manager_start) and has no `_process` attribute.
    "test_shared_memory_SharedMemoryServer_ignores_sigint":
        "uses CPython's manager internals (smm._process)",
    # (3.13) It asserts CPython's early delete (gh-82300): a process that
    # only attached with track=True removes the block when it exits, and
    # its tracker prints the leak message. With pshm, attaching never
    # changes whether a block is removed, and the creator still holds it.
    "test_shared_memory_tracking":
        "asserts CPython's early delete on attach (gh-82300) and its message",
    # It copies a list holding 'encodés' (7 characters, 8 bytes of UTF-8)
    # and asserts the copy's .format equals the original's. CPython sizes a
    # str by characters (8 bytes for 7), pshm by UTF-8 bytes (16 for 8), so
    # the copy reads '16s8sdq...' where the original, whose storage was
    # fixed at creation for 'howdy', reads '8s8sdq...'.
    "test_shared_memory_ShareableList_basics":
        "str storage measured in UTF-8 bytes: a copy holding 'encodés' gets 16s, not 8s",
}

# Tests not run on pshm, with the reason: they cannot finish in reasonable
# time there.
NOT_RUN = {
    # After SIGTERMing a creator, it polls SharedMemory(name) until attach
    # fails, keeping the last handle alive while it sleeps. With pshm every
    # handle is a holder, so the poller itself keeps the block from pshm's
    # tracker, and the loop runs out its whole timeout (support.LONG_TIMEOUT,
    # 5 min; 60 s on 3.8) before it would fail anyway on the message of
    # CPython's resource tracker it then asserts. test_pkg_tracker.py covers
    # the case for pshm (a killed only holder leaks nothing).
    "test_shared_memory_cleaned_after_process_termination":
        "its polling attach is itself a pshm holder: it would spin for its whole timeout",
}


def find_test_module():
    """This interpreter's test._test_multiprocessing, or None and why."""
    try:
        import test._test_multiprocessing as tm
    except ImportError as e:
        return None, "test._test_multiprocessing not importable by %s (%s)" % (
            sys.executable, e)
    if not hasattr(tm, "_TestSharedMemory"):
        return None, "no _TestSharedMemory in %s" % tm.__file__
    return tm, None


SITECUSTOMIZE = r'''"""Written by tests/pkg/run_cpython_suite.py: point this Python's
multiprocessing shared memory at pshm before anything imports it."""
import os
import sys
import multiprocessing
import multiprocessing.managers
try:
    import pshm.managers
    import pshm.shared_memory
except BaseException as e:  # never let a child test CPython instead, silently
    sys.stderr.write("run_cpython_suite sitecustomize: cannot import pshm: %r\n" % (e,))
    os._exit(70)
sys.modules["multiprocessing.shared_memory"] = pshm.shared_memory
multiprocessing.shared_memory = pshm.shared_memory
multiprocessing.managers.SharedMemoryManager = pshm.managers.SharedMemoryManager
'''


def swap_in_pshm():
    """Make `multiprocessing.shared_memory` and the managers'
    SharedMemoryManager pshm's, in this process and in Python children."""
    import multiprocessing
    import multiprocessing.managers
    import pshm.managers
    import pshm.shared_memory
    sys.modules["multiprocessing.shared_memory"] = pshm.shared_memory
    multiprocessing.shared_memory = pshm.shared_memory  # what mock.patch('multiprocessing.shared_memory._make_filename') resolves
    multiprocessing.managers.SharedMemoryManager = pshm.managers.SharedMemoryManager

    shim = tempfile.mkdtemp(prefix="pshm-suite-")
    with open(os.path.join(shim, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE)
    # The package's own directory, wherever this process found it.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(pshm.__file__)))
    path = os.pathsep.join([shim, package_root] + [p for p in os.environ.get(
        "PYTHONPATH", "").split(os.pathsep) if p])
    os.environ["PYTHONPATH"] = path
    probe = subprocess.run([sys.executable, "-c", "import multiprocessing.shared_memory as m;"
                            "print(m.__name__)"], capture_output=True, text=True, timeout=60)
    if probe.stdout != "pshm.shared_memory\n":
        raise RuntimeError("the swap does not reach Python children: %r %r"
                           % (probe.stdout, probe.stderr))
    return shim, path


def redirect_children(tm, path):
    """Python children of the tests get PYTHONPATH (and so the swap): an
    env var passed to assert_python_ok turns off its -I / -E; the Popen in
    the test module (only that module's name is rebound) drops -E."""
    from test.support import script_helper
    for fname in ("assert_python_ok", "assert_python_failure"):
        original = getattr(script_helper, fname)

        def wrapper(*args, __original=original, **env_vars):
            env_vars.setdefault("PYTHONPATH", path)
            return __original(*args, **env_vars)
        setattr(script_helper, fname, wrapper)

    class Popen(subprocess.Popen):
        def __init__(self, args, *a, **kw):
            if isinstance(args, (list, tuple)) and args and args[0] == sys.executable:
                code_at = args.index("-c") if "-c" in args else len(args)
                args = [args[0]] + [x for x in args[1:code_at] if x not in ("-E", "-I")] + \
                    list(args[code_at:])
                env = dict(kw.get("env") or os.environ)
                env["PYTHONPATH"] = path
                kw["env"] = env
            super().__init__(args, *a, **kw)

    shim = type(sys)("subprocess")
    shim.__dict__.update(subprocess.__dict__)
    shim.Popen = Popen
    tm.subprocess = shim


def main():
    print("CPython's _TestSharedMemory on %s (Python %s, %s)" % (
        "CPython's own module" if CPYTHON else "pshm", sys.version.split()[0], sys.executable),
        flush=True)
    shim = None
    if not CPYTHON:
        try:
            shim, path = swap_in_pshm()  # before the test module imports anything
        except ImportError as e:
            print("cannot import pshm (PYTHONPATH=%r): %r" % (os.environ.get("PYTHONPATH"), e))
            print(summary(0, 1, 0))
            return 1
    try:
        tm, why = find_test_module()
        if tm is None:
            print("skipped: " + why)
            print(summary(0, 0, 1))
            return 0
        if not CPYTHON:
            redirect_children(tm, path)
            assert tm.shared_memory.__name__.startswith("pshm"), tm.shared_memory
        return run(tm)
    finally:
        if shim:
            shutil.rmtree(shim, ignore_errors=True)


def run(tm):
    globs = {"__name__": "cpython_suite_on_pshm"}
    kwargs = {"only_type": "processes"} if "only_type" in \
        tm.install_tests_in_module_dict.__code__.co_varnames else {}
    tm.install_tests_in_module_dict(globs, "fork", **kwargs)
    case = globs["WithProcessesTestSharedMemory"]
    expected, not_run = ({}, {}) if CPYTHON else (EXPECTED_FAILURES, NOT_RUN)
    suite = unittest.TestSuite(
        t for t in unittest.defaultTestLoader.loadTestsFromTestCase(case)
        if t.id().rsplit(".", 1)[-1] not in not_run)
    globs["setUpModule"]()
    try:
        result = unittest.TextTestRunner(verbosity=2, resultclass=Result).run(suite)
    finally:
        globs["tearDownModule"]()
    outcomes = {test_id.rsplit(".", 1)[-1]: o for test_id, o in result.outcomes.items()}
    outcomes.update((name, "not run") for name in not_run if hasattr(case, name))
    print()
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for name, outcome in sorted(outcomes.items()):
        verdict, count = judge(name, outcome, expected, not_run)
        counts[count] += 1
        print("%-60s %s" % (name, verdict))
    xfails = sum(1 for n, o in outcomes.items() if n in expected and o == "fail")
    print("of the passed, %d failed as expected (deliberate differences)" % xfails)
    print(summary(counts["passed"], counts["failed"], counts["skipped"]))
    return 1 if counts["failed"] or not outcomes else 0


def judge(name, outcome, expected, not_run):
    """(what to print, which count) for one test's outcome."""
    if outcome == "skip":
        return "SKIP", "skipped"
    if outcome == "not run":
        return "NOT RUN (%s)" % not_run[name], "skipped"
    if name in expected:
        if outcome == "fail":
            return "XFAIL (%s)" % expected[name], "passed"
        return "UNEXPECTED PASS (expected to fail: %s)" % expected[name], "failed"
    return ("PASS", "passed") if outcome == "pass" else ("FAIL (unexpected)", "failed")


if __name__ == "__main__":
    sys.exit(main())
