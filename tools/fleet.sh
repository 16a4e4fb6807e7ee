#!/usr/bin/env bash
# A drover installation on this machine's loopback, for a person to try:
# drover-coordinator (hosting the mesh tracker), an origin, one regional seed
# and six drover-agent processes, each supervising drover-demo-service.
#
#   bash tools/fleet.sh up                  # build, start everything, print what to type
#   bash tools/fleet.sh release NAME [k=v]  # push a demo release (error_rate, p99_ms, saturation, ...)
#   bash tools/fleet.sh demo                # up, then v1 -> v2 (canary) -> bad v3 (rolled back), down
#   bash tools/fleet.sh down                # stop everything and its services
#
# Everything lives in $DROVER_FLEET_DIR (default /tmp/drover-fleet); the API
# listens on 127.0.0.1:${DROVER_FLEET_PORT:-7080} (the agent protocol, the
# tracker and the origin's feed on the next ports).
set -euo pipefail
# Release trees are pushed as made: nothing group- or world-writable.
umask 022
cd "$(dirname "$0")/.."
root="$PWD"
dir="${DROVER_FLEET_DIR:-/tmp/drover-fleet}"
base="${DROVER_FLEET_PORT:-7080}"
bin="$root/build/bin"
hosts=(h1 h2 h3 h4 h5 h6)

build() {
  bash tools/setup.sh
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "${DROVER_JOBS:-2}" --target drover drover-coordinator drover-agent \
    drover-seed drover-demo-service >/dev/null
}

# Waits until FILE has a line with "event":"EVENT" (30 s).
wait_event() {
  local file="$1" event="$2"
  for _ in $(seq 1 300); do
    if grep -q "\"event\":\"$event\"" "$file" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "fleet: $(basename "$file" .out) did not report '$event'; see ${file%.out}.err" >&2
  exit 1
}

start() {  # start NAME ARGS...: a daemon in the background, stdout and stderr to files
  local name="$1"
  shift
  setsid "$@" >"$dir/$name.out" 2>"$dir/$name.err" </dev/null &
  echo $! >"$dir/$name.pid"
  disown
}

down() {
  [ -d "$dir" ] || return 0
  # The daemons first, asked to stop (agents leave their services running,
  # as under systemd), then the services and anything left.
  for f in "$dir"/*.pid; do
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    alive=0
    for f in "$dir"/*.pid; do
      [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for f in "$dir"/*.pid "$dir"/state-*/run/*.pid; do
    [ -f "$f" ] || continue
    pid="$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p; /^[0-9]*$/p' "$f" | head -1)"
    [ -n "$pid" ] && kill -9 -- "-$pid" 2>/dev/null || true
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  pkill -9 -f "$dir/" 2>/dev/null || true
  rm -rf "$dir"
  echo "fleet: stopped, $dir removed"
}

up() {
  build
  down >/dev/null
  mkdir -p "$dir"
  local api=$base requests=$((base + 1)) announcements=$((base + 2)) tracker=$((base + 3))
  local feed=$((base + 4))
  "$bin/drover" keygen --out "$dir/root.key" >/dev/null
  "$bin/drover" keygen --out "$dir/online.key" >/dev/null
  "$bin/drover" key certify --root "$dir/root.key" --subject "$dir/online.key.pub" \
    --out "$dir/online.cert" >/dev/null
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/webhook.secret")
  # The agent protocol runs over TLS; every agent pins this certificate.
  (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/coordinator-tls.key" -out "$dir/coordinator-tls.crt" -days 30 \
    -subj /CN=drover-coordinator -addext subjectAltName=DNS:drover-coordinator 2>/dev/null)
  # Mesh tokens: the tracker serves only nodes vouched for (the coordinator
  # issues the agents' tokens; the origin's and the seed's come from the key).
  "$bin/drover" mesh token-key --out "$dir/mesh.key" >/dev/null
  "$bin/drover" mesh token --key-file "$dir/mesh.key" --role origin --host origin \
    --out "$dir/origin.token" >/dev/null
  "$bin/drover" mesh token --key-file "$dir/mesh.key" --role seed --region r1 --host seed-r1 \
    --out "$dir/seed-r1.token" >/dev/null
  local admin join
  admin="$("$bin/drover-coordinator" token create admin --role admin --data-dir "$dir/coordinator")"
  join="$("$bin/drover-coordinator" join-token create --uses "${#hosts[@]}" --data-dir "$dir/coordinator")"
  cat >"$dir/coordinator.json" <<JSON
{"format": "drover.coordinator-config.v1", "data_dir": "$dir/coordinator",
 "online_key": "$dir/online.key", "online_cert": "$dir/online.cert",
 "api": {"listen": "127.0.0.1:$api"},
 "agents": {"requests": "tls+tcp://127.0.0.1:$requests", "announcements": "tls+tcp://127.0.0.1:$announcements",
            "tls": {"cert_file": "$dir/coordinator-tls.crt", "key_file": "$dir/coordinator-tls.key"}},
 "tracker": {"listen": "127.0.0.1:$tracker", "interval_s": 2, "token_key_file": "$dir/mesh.key"},
 "origin_feed": "http://127.0.0.1:$feed",
 "webhook_secret_file": "$dir/webhook.secret", "tick_ms": 100}
JSON
  mkdir -p "$dir/store"
  start coordinator "$bin/drover-coordinator" run --config "$dir/coordinator.json"
  wait_event "$dir/coordinator.out" ready
  start origin "$bin/drover-seed" origin --store "$dir/store" --feed-listen "127.0.0.1:$feed" \
    --tracker "http://127.0.0.1:$tracker" --token-file "$dir/origin.token" \
    --announce-interval 2 --log-level warn
  wait_event "$dir/origin.out" ready
  start seed-r1 "$bin/drover-seed" seed --region r1 --cache "$dir/seed-r1" \
    --origin "http://127.0.0.1:$feed" --tracker "http://127.0.0.1:$tracker" --host seed-r1 \
    --token-file "$dir/seed-r1.token" --announce-interval 2 --log-level warn
  wait_event "$dir/seed-r1.out" ready
  local port=$((base + 20))
  # As root the services run as nobody, never as root (docs/AGENT.md, "Users
  # and privileges"); as anyone else, as that user.
  local user=""
  [ "$(id -u)" -eq 0 ] && user='"user": "nobody", '
  for h in "${hosts[@]}"; do
    port=$((port + 1))
    cat >"$dir/$h.json" <<JSON
{"format": "drover.agent-config.v1", "host": "$h", "region": "r1", "cluster": "c1",
 "state_dir": "$dir/state-$h", "root_key": "$dir/root.key.pub", "join_token": "$join",
 "coordinator": {"requests": "tls+tcp://127.0.0.1:$requests", "announcements": "tls+tcp://127.0.0.1:$announcements",
                 "tls": {"ca_file": "$dir/coordinator-tls.crt", "server_name": "drover-coordinator"}},
 "poll_interval_ms": 1000, "health_interval_ms": 500, "mesh": {"announce_interval_s": 2},
 "services": [{"name": "web", ${user}"port": $port,
               "start": ["$bin/drover-demo-service", "--port", "{port}"],
               "health": "http://127.0.0.1:{port}/health", "start_timeout_s": 10}]}
JSON
    start "$h" "$bin/drover-agent" run --config "$dir/$h.json" --log-level warn
  done
  for h in "${hosts[@]}"; do wait_event "$dir/$h.out" enrolled; done
  cat >"$dir/env" <<ENV
export PATH="$bin:\$PATH"
export DROVER_COORDINATOR="http://127.0.0.1:$api"
export DROVER_TOKEN="$admin"
export DROVER_STORE="$dir/store"
ENV
  # shellcheck disable=SC1091
  source "$dir/env"
  cat >"$dir/pipeline.json" <<JSON
{"service": "web", "envs": [{"name": "prod", "region": "r1"}],
 "strategy": {"kind": "canary", "batch_size": 3, "canary_percents": [16, 50]},
 "health_checks": {"bake_s": 5, "min_samples": 5},
 "timeouts": {"ready_s": 120, "converge_s": 120, "rollback_s": 120}}
JSON
  drover pipeline apply "$dir/pipeline.json" >/dev/null
  echo "fleet: up in $dir: coordinator http://127.0.0.1:$api, origin, seed-r1, agents ${hosts[*]}"
  cat <<TXT

Try it (each host's demo service answers on 127.0.0.1:$((base + 21))-$((base + 26))/version):
  source $dir/env
  v1=\$(bash tools/fleet.sh release v1 error_rate=0.01 p99_ms=12)
  drover deploy web \$v1 --batch-size 6 --wait          # the first release, everywhere
  v2=\$(bash tools/fleet.sh release v2 error_rate=0.01 p99_ms=14)
  drover deploy web \$v2 --wait                         # canary: 1 host, then 2, then 3
  v3=\$(bash tools/fleet.sh release v3 error_rate=0.40)
  drover deploy web \$v3 --wait                         # bad health: rolled back on its own
  drover status web-3; drover hosts; drover audit --service web; drover audit verify
  drover rollback web-2 --wait                          # or by hand, any deploy
  bash tools/fleet.sh down
TXT
}

release() {
  [ $# -ge 1 ] || { echo "usage: fleet.sh release NAME [key=value ...]" >&2; exit 2; }
  # shellcheck disable=SC1091
  source "$dir/env"
  local name="$1"
  shift
  local tree="$dir/trees/$name" json="{" sep=""
  mkdir -p "$tree"
  for kv in "$@"; do
    json="$json$sep\"${kv%%=*}\": ${kv#*=}"
    sep=", "
  done
  echo "$json}" >"$tree/demo.json"
  head -c 2000000 /dev/urandom >"$tree/payload"
  local id
  id="$(drover artifact push "$tree" --service web --git-sha "$(printf '%s' "$name" | sha1sum | cut -c1-12)" --json |
    sed -n 's/.*"artifact_id":"\([^"]*\)".*/\1/p')"
  # The coordinator registers it from the origin's feed.
  for _ in $(seq 1 100); do
    if curl -sf -H "Authorization: Bearer $DROVER_TOKEN" "$DROVER_COORDINATOR/artifacts/$id" \
      >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  echo "$id"
}

demo() {
  trap 'down >/dev/null' EXIT
  up >/dev/null
  # shellcheck disable=SC1091
  source "$dir/env"
  step() { printf '\n== %s\n' "$*"; }
  step "a fleet of six agents on loopback ($dir)"
  drover hosts
  step "v1 to every host"
  v1="$(release v1 error_rate=0.01 p99_ms=12)"
  drover deploy web "$v1" --batch-size 6 --wait
  step "v2 through canary batches (1 host, 2 more, then 3; each baked 5 s)"
  v2="$(release v2 error_rate=0.01 p99_ms=14)"
  drover deploy web "$v2" --wait
  step "v3 errors 40x more: its canary fails and it is rolled back"
  v3="$(release v3 error_rate=0.40 p99_ms=14)"
  drover deploy web "$v3" --wait || true
  drover status web-3
  step "the audit log"
  drover audit --service web | tail -8
  drover audit verify
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  release) shift; release "$@" ;;
  demo) demo ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
