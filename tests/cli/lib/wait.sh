# Waiting on a background process in the CLI tests (sourced). A wait ends when
# its condition holds, or returns 1 at once when the process it waits on has
# exited without the condition holding. There is no time limit of its own: a
# sanitized build on a loaded machine can take minutes to reach a step that
# takes seconds in Release, and ctest's TIMEOUT bounds the whole test.

# wait_until PID COMMAND...: run COMMAND every 50 ms until it succeeds (0), or
# until PID has ended and COMMAND still fails (1).
wait_until() {
  local pid=$1
  shift
  while ! "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      "$@"  # the condition may have come true as the process ended
      return
    fi
    sleep 0.05
  done
}

# wait_for_line PID PATTERN FILE: wait until FILE has a line matching the
# extended regular expression PATTERN; when PID ends first, print FILE and
# return 1.
wait_for_line() {
  wait_until "$1" grep -qsE "$2" "$3" && return 0
  cat "$3" 2>/dev/null || true
  return 1
}
