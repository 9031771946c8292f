#!/usr/bin/env python3
"""Prints 'N passed, N failed' for a meson test run, counting GoogleTest cases
inside each gtest executable (meson itself counts executables only)."""
import json
import re
import sys

passed = failed = 0
with open(sys.argv[1]) as log:
    for line in log:
        test = json.loads(line)
        out = test.get("stdout", "")
        gtest_passed = re.search(r"^\[  PASSED  \] (\d+) tests?\.", out, re.M)
        gtest_failed = re.search(r"^\[  FAILED  \] (\d+) tests?, listed below", out, re.M)
        if gtest_passed or gtest_failed:
            passed += int(gtest_passed.group(1)) if gtest_passed else 0
            failed += int(gtest_failed.group(1)) if gtest_failed else 0
        elif test["result"] in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif test["result"] != "SKIP":
            failed += 1
print(f"{passed} passed, {failed} failed")
