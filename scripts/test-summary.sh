#!/usr/bin/env bash
# Filter for `go test -v` output, as the Makefile uses it:
#
#   set -o pipefail; go test -v ./backend/e2e/ 2>&1 | scripts/test-summary.sh
#
# Every line is passed through as it arrives. At the end comes a summary:
# counts, the failed tests, the skipped top-level tests with their reason,
# the slowest top-level tests, and each package's result.
#
# Exit status: 1 if the output shows a failure (a --- FAIL, a FAIL line, a
# panic, a build error) or no package result at all; 0 otherwise. The Makefile
# also sets pipefail, so go test's own exit status is kept either way.
set -uo pipefail

exec awk '
function dur(s) { gsub(/[()s]/, "", s); return s + 0 }
{ print; fflush() }

# --- PASS: TestX (1.23s), indented for subtests.
$1 == "---" && ($2 == "PASS:" || $2 == "FAIL:" || $2 == "SKIP:") {
  name = $3; secs = dur($4); top = (index(name, "/") == 0)
  if ($2 == "PASS:") { passed++; if (top) topPassed++ }
  if ($2 == "FAIL:") { failed++; failedNames[failed] = name }
  if ($2 == "SKIP:") { skipped++; if (top) { topSkipped++; skipNames[topSkipped] = name; skipWhy[name] = lastMsg } }
  if (top) { nTop++; topName[nTop] = name; topSecs[nTop] = secs; topRes[nTop] = substr($2, 1, 4) }
  next
}
# go test -v prints the t.Skip message of a test just before its --- SKIP line.
/^    [^ ].*\.go:[0-9]+: / { lastMsg = $0; sub(/^[ \t]+/, "", lastMsg) }
/^ok[ \t]/                      { nPkg++; pkgs[nPkg] = $0; okPkgs++ }
/^FAIL[ \t]/                    { nPkg++; pkgs[nPkg] = $0; badPkgs++ }
/^FAIL$/                        { sawFail = 1 }
/^panic: /                      { panicked = 1 }
/\[build failed\]|\[setup failed\]/ { buildFailed = 1 }

END {
  print ""
  print "==================== test summary ===================="
  printf "  tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped
  if (failed > 0) {
    print "  failed:"
    for (i = 1; i <= failed; i++) print "    " failedNames[i]
  }
  if (topSkipped > 0) {
    print "  skipped:"
    for (i = 1; i <= topSkipped; i++) printf "    %s: %s\n", skipNames[i], skipWhy[skipNames[i]]
  }
  if (nTop > 0) {
    # Slowest top-level tests first (selection sort: the lists are short).
    for (i = 1; i <= nTop; i++) order[i] = i
    for (i = 1; i <= nTop; i++)
      for (j = i + 1; j <= nTop; j++)
        if (topSecs[order[j]] > topSecs[order[i]]) { k = order[i]; order[i] = order[j]; order[j] = k }
    print "  slowest:"
    for (i = 1; i <= nTop && i <= 10; i++) printf "    %8.1fs  %s  %s\n", topSecs[order[i]], topRes[order[i]], topName[order[i]]
  }
  if (nPkg > 0) {
    print "  packages:"
    for (i = 1; i <= nPkg; i++) print "    " pkgs[i]
  }
  bad = (failed > 0 || badPkgs > 0 || sawFail || panicked || buildFailed || nPkg == 0)
  if (panicked) print "  a test panicked: see the goroutine dump above"
  if (buildFailed) print "  the build failed: see the compiler errors above"
  if (nPkg == 0) print "  no package result: go test did not finish"
  if (!bad && skipped > 0 && passed == 0) print "  note: every test was skipped"
  print "  RESULT: " (bad ? "FAIL" : "PASS")
  print "======================================================"
  exit bad ? 1 : 0
}
'
