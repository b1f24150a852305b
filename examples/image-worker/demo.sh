#!/bin/bash
# image-worker demo: two network environments (net-a with two stores, net-b
# with one), an image-api and two image-workers on a throwaway ZooKeeper.
# Submits a batch of fetch jobs (and one twice), waits until every job is
# stored, prints where the images landed, one job's trace, and the address of
# the live page. When stdin is a terminal it then keeps the system up for
# you (press Enter to stop).
#
#   examples/image-worker/demo.sh [BUILD_DIR]     (default: build)
#
# Without ZK_CONNECT it runs itself under BUILD_DIR/examples/zk-sandbox, which
# starts a ZooKeeper and removes it afterwards. Every wait is bounded.
set -euo pipefail
# say, wait_until, get, post
. "$(dirname "$0")/../common/demo_lib.sh"

build=${1:-build}
if [ -z "${ZK_CONNECT:-}" ]; then
  exec "$build/examples/zk-sandbox" -- "$0" "$build"
fi
bin=$build/examples/image-worker
work=$(mktemp -d "${TMPDIR:-/tmp}/image-worker-demo.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

root=/image-worker-demo
has() { grep -qsF -- "$2" "$work/$1.log"; }
expect() {
  if ! wait_until "${3:-10}" has "$1" "$2"; then
    echo "$1 did not print \"$2\" within ${3:-10} s; its output:" >&2
    sed 's/^/  | /' "$work/$1.log" >&2
    exit 1
  fi
}
port_of() { sed -n 's/^listening 127.0.0.1:\([0-9]*\)$/\1/p' "$work/$1.log"; }
start() { # start NAME PROGRAM ARGS...
  local name=$1 prog=$2; shift 2
  "$bin/$prog" --zk "$ZK_CONNECT" --root "$root" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}

say "photos for two network environments, made by image-gen (EXIF GPS in the JPEGs)"
"$bin/image-gen" --dir "$work/net-a" --count 8 --prefix a | sed 's/^/  net-a: /'
"$bin/image-gen" --dir "$work/net-b" --count 4 --prefix b | sed 's/^/  net-b: /'
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secret"

say "stores (a1 and a2 serve net-a, b1 serves net-b), the api and two workers"
start a1 image-store --network net-a --dir "$work/net-a" --id a1
start a2 image-store --network net-a --dir "$work/net-a" --id a2
start b1 image-store --network net-b --dir "$work/net-b" --id b1
for s in a1 a2 b1; do expect "$s" "listening " 20; echo "  store $s: 127.0.0.1:$(port_of $s)"; done
start api image-api --images "$work/stored" --secret-file "$work/secret" --trace-file "$work/trace.jsonl"
expect api "listening " 20
api=$(port_of api)
echo "  image-api: 127.0.0.1:$api"
for w in w1 w2; do
  start "$w" image-worker --id "$w" --secret-file "$work/secret" --trace-file "$work/trace.jsonl"
  expect "$w" "ready $w" 20
done

start_inspector "$build" "$root"

say "12 fetch jobs (the url's path is fetched from a store of its network, never from its host)"
jobs=()
submit() { # submit NETWORK FILE DATAID
  local r
  r=$(post "$api" /jobs "{\"url\":\"http://images.$1.example:80/img/$2\",\"network\":\"$1\",\"dataId\":\"$3\"}")
  echo "  $3: $r"
  jobs+=("$(printf '%s' "$r" | sed -n 's/.*"jobId":"\([0-9a-f]*\)".*/\1/p')")
}
for i in 0 1 2 3 4 5 6 7; do submit net-a "a-$i.$([ $i = 5 ] && echo png || echo jpg)" "photo-a$i"; done
for i in 0 1 2 3; do submit net-b "b-$i.jpg" "photo-b$i"; done

say "the same data id again: the same job, no second fetch"
post "$api" /jobs '{"url":"http://images.net-a.example:80/img/a-0.jpg","network":"net-a","dataId":"photo-a0"}' | sed 's/^/  /'
say "a network no store serves: refused"
post "$api" /jobs '{"url":"http://x:80/img/a-0.jpg","network":"net-zz","dataId":"photo-z"}' | sed 's/^/  /'

say "waiting for every job to be stored"
all_stored() {
  local j
  for j in "${jobs[@]}"; do get "$api" "/jobs/$j" | grep -q '"state":"stored"' || return 1; done
}
if ! wait_until 60 all_stored; then
  echo "not every job was stored within 60 s:" >&2
  for j in "${jobs[@]}"; do get "$api" "/jobs/$j" | sed 's/^/  /' >&2; done
  exit 1
fi
echo "  all ${#jobs[@]} stored: $(get "$api" /health)"

say "where the images landed (a directory per place: EXIF GPS area, else a 0.1° cell)"
(cd "$work/stored" && find . -type f | sort | sed 's/^\.\//  /')

say "one job followed through the trace file (api, queue, worker, callback)"
trace=$(get "$api" "/jobs/${jobs[0]}" | sed -n 's/.*"traceId":"\([0-9a-f]*\)".*/\1/p')
grep -F "\"trace_id\":\"$trace\"" "$work/trace.jsonl" |
  grep -E '"event":"(stage|queue)"' | sed 's/"ts":"[^"]*",//; s/^/  /'

say "the live page: http://127.0.0.1:$api/ (Server-Sent Events at /events)"
if [ -t 0 ]; then
  echo "  open it in a browser; jobs you POST to http://127.0.0.1:$api/jobs appear there. Enter stops the demo."
  read -r _
fi
say "done"
