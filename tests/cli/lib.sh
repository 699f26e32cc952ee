# Sourced by the CLI test scripts: how a check fails, and how an expected
# error is checked (non-zero exit, exactly one line on stderr containing it).
export OMP_NUM_THREADS=2
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error "what it must say" cmd...
expect_error() {
  local want=$1; shift
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [[ $rc -ne 0 ]] || fail "expected failure: $*"
  [[ $(printf '%s\n' "$err" | wc -l) -eq 1 ]] || fail "expected one line, got: $err"
  [[ $err == *"$want"* ]] || fail "expected '$want' in: $err"
  echo "ok (error): $err"
}
