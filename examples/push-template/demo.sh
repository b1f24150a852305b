#!/bin/bash
# push-template demo: a catalogue, 3 servers, a template edit that every
# server picks up, and a master failover, against a throwaway ZooKeeper.
#
#   examples/push-template/demo.sh [BUILD_DIR]     (default: build)
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
bin=$build/examples/push-template
work=$(mktemp -d "${TMPDIR:-/tmp}/push-template-demo.XXXXXX")
pids=()
cleanup() {
  # Only the servers this script started, by pid.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

db=sqlite:$work/push.db
root=/push-template-demo
admin() { "$bin/push-admin" --db "$db" --zk "$ZK_CONNECT" --zk-root "$root" "$@"; }
client() { "$bin/push-client" --zk "$ZK_CONNECT" --zk-root "$root" "$@"; }

say "push-admin: a category with two parameters and two templates (SQLite at $work/push.db)"
admin category add promo --description "spring promotion"
admin param set promo user --required
admin param set promo offer --optional --default "10% off"
admin template set promo notification_bar 'Hi {{user}}: {{offer}}'
admin template set promo landing_page '<h1>Hi {{user}}</h1><p>{{offer}}</p>'

say "3 push-servers (2 s ZooKeeper sessions)"
declare -A port pid
for id in s1 s2 s3; do
  "$bin/push-server" --db "$db" --zk "$ZK_CONNECT" --zk-root "$root" --id "$id" \
    --session-timeout-ms 2000 --health-interval-ms 500 >"$work/$id.log" 2>&1 &
  pid[$id]=$!
  pids+=($!)
done
for id in s1 s2 s3; do
  wait_until 20 grep -q '^listening ' "$work/$id.log" || { cat "$work/$id.log"; exit 1; }
  port[$id]=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\)$/\1/p' "$work/$id.log")
  echo "$id listens on 127.0.0.1:${port[$id]}"
done

start_inspector "$build" "$root"

say "push-client: discovery picks a server; values are escaped per kind"
client --category promo --param 'user=Ann & Bob'

say "push-admin changes a template: every server reloads from the database once"
out=$(admin template set promo notification_bar 'Now {{user}}, {{offer}}!')
printf '%s\n' "$out"
version=$(printf '%s\n' "$out" | sed -n 's/^published config version \([0-9]*\)$/\1/p')
[ -n "$version" ] || { echo "push-admin did not publish a config version" >&2; exit 1; }
# Each server's own answer, not the client's (which asks only one of them).
has_version() { get "$1" /config-version | grep -q "\"config_version\":$2[,}]"; }
for id in s1 s2 s3; do
  if ! wait_until 5 has_version "${port[$id]}" "$version"; then
    echo "$id did not load config version $version within 5 s: $(get "${port[$id]}" /config-version)" >&2
    exit 1
  fi
  echo "$id: $(get "${port[$id]}" /config-version)"
done
client --category promo --target notification_bar --param user=Ann

say "bad input gets a clear 4xx"
client --category promo --param nobody=1 || true
client --category nope --param user=x || true

master_now() {
  local id
  for id in "$@"; do
    if get "${port[$id]}" /role | grep -q '"role":"master"'; then echo "$id"; return 0; fi
  done
  return 1
}
say "the master probes every ZooKeeper member (ruok, srvr) and publishes $root/health"
wait_until 10 master_now s1 s2 s3 >/dev/null
master=$(master_now s1 s2 s3)
echo "master: $master"
get "${port[$master]}" /health

say "SIGKILL the master ($master): the next in line takes over after its session expires"
kill -9 "${pid[$master]}"
wait "${pid[$master]}" 2>/dev/null || true # reaped here, quietly
start=$SECONDS
rest=()
for id in s1 s2 s3; do [ "$id" = "$master" ] || rest+=("$id"); done
if wait_until 15 master_now "${rest[@]}" >/dev/null; then
  new=$(master_now "${rest[@]}")
  echo "new master: $new, about $((SECONDS - start)) s after the kill"
  get "${port[$new]}" /role
else
  echo "no new master within 15 s" >&2
  exit 1
fi
say "push-client keeps getting answers (the dead server is skipped)"
client --category promo --target notification_bar --param user=Eve --repeat 4 --interval-ms 100
echo
echo "demo done"
