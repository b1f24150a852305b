# Shell helpers of the example systems' demo scripts (sourced, not run).

# say TEXT: a heading.
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# wait_until SECONDS COMMAND...: polls every 0.1 s; fails when the time is up.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

# get PORT PATH: GET on 127.0.0.1:PORT with bash's /dev/tcp; prints the body.
get() {
  local body
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  body=$(timeout 5 cat <&3 | sed '1,/^\r$/d')
  exec 3<&-
  printf '%s\n' "$body"
}

# post PORT PATH JSON: POST JSON on 127.0.0.1:PORT with bash's /dev/tcp;
# prints the body.
post() {
  local body
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "$2" "${#3}" "$3" >&3
  body=$(timeout 5 cat <&3 | sed '1,/^\r$/d')
  exec 3<&-
  printf '%s\n' "$body"
}

# start_inspector BUILD_DIR ROOT: when ZKR_INSPECTOR=1 (./run demo --inspector),
# starts zk-inspector on ROOT beside the demo and prints its page's address.
# Uses the demo's $work and pids (stopped with the rest).
start_inspector() {
  [ "${ZKR_INSPECTOR:-0}" = 1 ] || return 0
  "$1/examples/inspector/zk-inspector" --zk "$ZK_CONNECT" --path "$2" >"$work/inspector.log" 2>&1 &
  pids+=($!)
  if ! wait_until 20 grep -q '^listening ' "$work/inspector.log"; then
    echo "zk-inspector did not start:" >&2
    sed 's/^/  | /' "$work/inspector.log" >&2
    return 1
  fi
  echo "  zk-inspector: http://$(sed -n 's/^listening \(127.0.0.1:[0-9]*\)$/\1/p' "$work/inspector.log")/ shows $2 live"
}
