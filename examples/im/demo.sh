#!/bin/bash
# im demo: 3 im-servers, 2 im-routes and two scripted console clients that
# chat (group, private, the online list), then the server one of them is on
# is killed and she comes back through a route; against a throwaway ZooKeeper.
# Ends with an interactive client when stdin is a terminal.
#
#   examples/im/demo.sh [BUILD_DIR]     (default: build)
#
# Without ZK_CONNECT it runs itself under BUILD_DIR/examples/zk-sandbox, which
# starts a ZooKeeper and removes it afterwards. Every wait is bounded.
set -euo pipefail
# say, wait_until, get
. "$(dirname "$0")/../common/demo_lib.sh"

build=${1:-build}
if [ -z "${ZK_CONNECT:-}" ]; then
  exec "$build/examples/zk-sandbox" -- "$0" "$build"
fi
bin=$build/examples/im
work=$(mktemp -d "${TMPDIR:-/tmp}/im-demo.XXXXXX")
pids=()
cleanup() {
  # The clients' command FIFOs first (they see end of input), then every
  # process this script started, by pid.
  exec 5>&- 6>&-
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

root=/im-demo
session=(--session-timeout-ms 2000)
has() { grep -qsF -- "$2" "$work/$1.log"; }
count() { grep -c -- "$2" "$work/$1.log" || true; }
at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }
# expect NAME TEXT [SECONDS]: waits for TEXT in NAME's output, or fails the demo.
expect() {
  if ! wait_until "${3:-10}" has "$1" "$2"; then
    echo "$1 did not print \"$2\" within ${3:-10} s; its output:" >&2
    sed 's/^/  | /' "$work/$1.log" >&2
    exit 1
  fi
}
show() { sed "s/^/  $1 | /" "$work/$1.log"; }
# forget PID: a process reaped here leaves the cleanup list (its pid may be reused).
forget() {
  local p keep=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

say "3 im-servers and 2 im-routes (ZooKeeper sessions of 2 s, heartbeats of 1 s)"
declare -A pid sock http
for id in s1 s2 s3; do
  "$bin/im-server" --zk "$ZK_CONNECT" --zk-root "$root" --id "$id" "${session[@]}" --heartbeat-ms 1000 \
    >"$work/$id.log" 2>&1 &
  pid[$id]=$!
  pids+=($!)
done
for id in r1 r2; do
  "$bin/im-route" --zk "$ZK_CONNECT" --zk-root "$root" --id "$id" "${session[@]}" >"$work/$id.log" 2>&1 &
  pid[$id]=$!
  pids+=($!)
done
for id in s1 s2 s3 r1 r2; do
  expect "$id" "listening " 20
done
for id in s1 s2 s3; do
  sock[$id]=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\) http .*/\1/p' "$work/$id.log")
  http[$id]=$(sed -n 's/^listening .* http 127.0.0.1:\([0-9]*\)$/\1/p' "$work/$id.log")
  echo "$id: clients on 127.0.0.1:${sock[$id]}, internal HTTP on 127.0.0.1:${http[$id]}"
done
r1=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\)$/\1/p' "$work/r1.log")
r2=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\)$/\1/p' "$work/r2.log")
echo "r1: 127.0.0.1:$r1, r2: 127.0.0.1:$r2"

start_inspector "$build" "$root"

say "alice and bob register and log in (each client's commands come from a FIFO)"
mkfifo "$work/alice.in" "$work/bob.in"
# Opened read-write, so neither this script nor the client blocks on the
# open, and the client sees the end of its input only when we close it.
exec 5<>"$work/alice.in" 6<>"$work/bob.in"
client() { # NAME FD-FILE ROUTES...
  local name=$1 input=$2; shift 2
  "$bin/im-client" "$@" --register "$name" --heartbeat-ms 1000 --input "$input" >"$work/$name.log" 2>&1 &
  pid[$name]=$!
  pids+=($!)
}
client alice "$work/alice.in" --route "127.0.0.1:$r1" --route "127.0.0.1:$r2"
client bob "$work/bob.in" --route "127.0.0.1:$r2" --route "127.0.0.1:$r1"
expect alice "logged in as "
expect bob "logged in as "
alice_id=$(sed -n 's/^registered \(u[0-9]*\) (alice)$/\1/p' "$work/alice.log")
bob_id=$(sed -n 's/^registered \(u[0-9]*\) (bob)$/\1/p' "$work/bob.log")
[ -n "$alice_id" ] && [ -n "$bob_id" ] || { echo "no \"registered uN (NAME)\" line" >&2; show alice; show bob; exit 1; }
on=$(sed -n 's/^logged in as .* on \(s[0-9]*\)$/\1/p' "$work/alice.log" | tail -n 1)
echo "alice is $alice_id on $on; bob is $bob_id on $(sed -n 's/^logged in as .* on \(s[0-9]*\)$/\1/p' "$work/bob.log" | tail -n 1)"

say "alice writes to the group; bob answers her privately; the online list"
echo "hello everyone, alice here" >&5
expect bob "[group] alice($alice_id): hello everyone, alice here"
expect alice "[group] alice($alice_id): hello everyone, alice here" # the sender gets it too
echo "$alice_id;;hi alice, only you see this" >&6
expect alice "[private] bob($bob_id): hi alice, only you see this"
echo ":olu" >&5
expect alice "online: "
grep '^online: ' "$work/alice.log" | tail -n 1
echo "route r1 GET /online: $(get "$r1" /online)"
echo "$on GET /health: $(get "${http[$on]}" /health)"

say "SIGKILL $on, the server alice is on: her route vanishes when its session expires, she logs in again"
logins_before=$(count alice '^logged in as ')
kill -9 "${pid[$on]}"
wait "${pid[$on]}" 2>/dev/null || true # reaped here, quietly
forget "${pid[$on]}"
start=$SECONDS
expect alice "reconnecting: " 5
if ! wait_until 20 at_least alice '^logged in as ' $((logins_before + 1)); then
  echo "alice did not log in again within 20 s" >&2
  show alice >&2
  exit 1
fi
now_on=$(sed -n 's/^logged in as .* on \(s[0-9]*\)$/\1/p' "$work/alice.log" | tail -n 1)
echo "alice is back on $now_on, about $((SECONDS - start)) s after the kill"
# bob may have been on the same server: wait until both are on a live one.
bob_back() { [ "$(sed -n 's/^logged in as .* on \(s[0-9]*\)$/\1/p' "$work/bob.log" | tail -n 1)" != "$on" ]; }
wait_until 20 bob_back || { echo "bob did not leave $on within 20 s" >&2; show bob >&2; exit 1; }
echo "route r2 GET /online: $(get "$r2" /online)"

say "a message reaches alice on her new server"
echo "$alice_id;;welcome back, alice" >&6
expect alice "[private] bob($bob_id): welcome back, alice"
echo "glad to be back" >&5
expect bob "[group] alice($alice_id): glad to be back"

say "both quit (:q)"
echo ":q" >&5
echo ":q" >&6
for name in alice bob; do
  gone() { ! kill -0 "${pid[$name]}" 2>/dev/null; }
  wait_until 10 gone || { echo "$name did not exit within 10 s of :q" >&2; exit 1; }
  status=0
  wait "${pid[$name]}" || status=$?
  forget "${pid[$name]}"
  echo "$name exited with status $status"
done

say "alice's output"
show alice
say "bob's output"
show bob

if [ -t 0 ]; then
  me=$(printf '%s' "${USER:-you}" | tr -cd 'A-Za-z0-9_.-' | cut -c1-32)
  case "$me" in "" | alice | bob) me=you ;; esac
  say "your turn: an interactive im-client as \"$me\" (lines: text to the group, ID;;text private, :olu, :q)"
  echo "(alice and bob have left; to talk to yourself, run in another terminal:"
  echo "  $bin/im-client --route 127.0.0.1:$r2 --register someone)"
  "$bin/im-client" --route "127.0.0.1:$r1" --route "127.0.0.1:$r2" --register "$me" --heartbeat-ms 1000 || true
else
  echo
  echo "stdin is not a terminal: skipping the interactive client"
fi
echo
echo "demo done"
