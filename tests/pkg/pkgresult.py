"""One outcome per test method, for the "N passed, M failed, K skipped"
line every script in tests/pkg/ ends with. (unittest's own counts differ
between versions: 3.12 leaves skipped classes out of testsRun.)"""
import unittest


class Result(unittest.TextTestResult):
    """outcomes: test id -> 'pass', 'fail' or 'skip'; a test fails if any
    of its subtests does, and stays failed."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.outcomes = {}

    def _set(self, test, outcome):
        if self.outcomes.get(test.id()) != "fail":
            self.outcomes[test.id()] = outcome

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set(test, "fail")

    def addError(self, test, err):
        super().addError(test, err)
        self._set(test, "fail")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skip")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._set(test, "fail")


def summary(passed, failed, skipped):
    line = "%d passed, %d failed" % (passed, failed)
    return line + (", %d skipped" % skipped if skipped else "")


def run_suite(suite):
    """Run `suite` verbosely; print the summary; return the exit status."""
    result = unittest.TextTestRunner(verbosity=2, resultclass=Result).run(suite)
    counts = [list(result.outcomes.values()).count(o) for o in ("pass", "fail", "skip")]
    print(summary(*counts))
    return 1 if counts[1] or not result.outcomes else 0
