#!/usr/bin/env bash
# The Linux half of the Windows byte-identity check: the list list_bytes
# makes here must be the one in tests/win/list_golden.txt, which the
# Windows build's list_bytes.exe is compared with under Wine
# (tests/win/CMakeLists.txt). Both halves hold, so a list made on Windows
# is byte for byte the list made on Linux.
set -euo pipefail
"$PSHM_HELPER_list_bytes" "$PSHM_SOURCE/tests/win/list_golden.txt"
