#!/usr/bin/env bash
# A drover installation on this machine's loopback, for a person to try:
# drover-coordinator (hosting the mesh tracker), an origin, a seed per region
# and ten drover-agent processes, each supervising drover-demo-service, in two
# environments: staging (region staging: s1, s2) and production (regions
# us-east-2, us-west-2, eu-west-1, ap-southeast-1, two hosts each), released
# through the pipeline of tools/fleet-pipeline.yaml. On p1 and p2 a second
# service, shop, runs in blue/green slots behind a real nginx of each host's
# own, released by tools/fleet-shop-pipeline.yaml. Every host also runs api,
# which depends on web (tools/fleet-api-pipeline.yaml): the two are released
# together, web first in each environment (drover release).
#
#   bash tools/fleet.sh up                  # build, start everything, print what to type
#   bash tools/fleet.sh release NAME [k=v]  # push a demo release (error_rate, p99_ms, by_region, ...)
#   SERVICE=shop bash tools/fleet.sh release NAME  # the same, of shop
#   bash tools/fleet.sh push NAME LOGIN     # a signed git push of NAME's commit to main (starts the pipeline)
#   SERVICE=api bash tools/fleet.sh release NAME   # the same, of api
#   bash tools/fleet.sh demo                # up, v1, a v2 bad in one region, a release of web and api, a blue/green flip, a flag kill, down
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
# host:region
places=(s1:staging s2:staging p1:us-east-2 p2:us-east-2 p3:us-west-2 p4:us-west-2
  p5:eu-west-1 p6:eu-west-1 p7:ap-southeast-1 p8:ap-southeast-1)
regions=(staging us-east-2 us-west-2 eu-west-1 ap-southeast-1)
hosts=()
for p in "${places[@]}"; do hosts+=("${p%%:*}"); done

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
  for n in "$dir"/nginx-*; do
    [ -f "$n/nginx.conf" ] && nginx -p "$n" -c "$n/nginx.conf" -e "$n/error.log" -s stop 2>/dev/null || true
  done
  pkill -9 -f "$dir/" 2>/dev/null || true
  rm -rf "$dir"
  echo "fleet: stopped, $dir removed"
}

up() {
  build
  down >/dev/null
  mkdir -p "$dir"
  # As root the services run as nobody (below): every directory above their
  # releases must let nobody through, or each start fails with "chdir:
  # Permission denied".
  if [ "$(id -u)" -eq 0 ] && ! runuser -u nobody -- test -x "$dir"; then
    echo "fleet: $dir is not reachable by user nobody (a 0700 directory above it?); the services run as nobody" >&2
    exit 1
  fi
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
 "webhook_secret_file": "$dir/webhook.secret", "tick_ms": 100,
 "metrics": {"listen": "127.0.0.1:$((base + 90))"}}
JSON
  mkdir -p "$dir/store"
  start coordinator "$bin/drover-coordinator" run --config "$dir/coordinator.json"
  wait_event "$dir/coordinator.out" ready
  start origin "$bin/drover-seed" origin --store "$dir/store" --feed-listen "127.0.0.1:$feed" \
    --tracker "http://127.0.0.1:$tracker" --token-file "$dir/origin.token" \
    --announce-interval 2 --metrics-listen "127.0.0.1:$((base + 91))" --log-level warn
  wait_event "$dir/origin.out" ready
  local seed_metrics=$((base + 91))
  for r in "${regions[@]}"; do
    seed_metrics=$((seed_metrics + 1))
    "$bin/drover" mesh token --key-file "$dir/mesh.key" --role seed --region "$r" \
      --host "seed-$r" --out "$dir/seed-$r.token" >/dev/null
    start "seed-$r" "$bin/drover-seed" seed --region "$r" --cache "$dir/seed-$r" \
      --origin "http://127.0.0.1:$feed" --tracker "http://127.0.0.1:$tracker" --host "seed-$r" \
      --token-file "$dir/seed-$r.token" --announce-interval 2 \
      --metrics-listen "127.0.0.1:$seed_metrics" --log-level warn
  done
  for r in "${regions[@]}"; do wait_event "$dir/seed-$r.out" ready; done
  local port=$((base + 20))
  # shop's nginx on p1 and p2: a master of each host's own, the agent owning
  # one drop-in in its conf.d (docs/AGENT.md, "Routers").
  local shop_port=$((base + 40))
  local api_port=$((base + 60))
  for h in p1 p2; do
    local n="$dir/nginx-$h"
    mkdir -p "$n/conf.d" "$n/tmp" "$n/logs"
    cat >"$n/nginx.conf" <<NGINX
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $n/tmp/body; proxy_temp_path $n/tmp/proxy;
  fastcgi_temp_path $n/tmp/fastcgi; uwsgi_temp_path $n/tmp/uwsgi; scgi_temp_path $n/tmp/scgi;
  include $n/conf.d/*.conf;
}
NGINX
    nginx -p "$n" -c "$n/nginx.conf" -e "$n/error.log"
  done
  # As root the services run as nobody, never as root (docs/AGENT.md, "Users
  # and privileges"); as anyone else, as that user.
  local user=""
  [ "$(id -u)" -eq 0 ] && user='"user": "nobody", '
  local agent_metrics=$((base + 99))
  for place in "${places[@]}"; do
    local h="${place%%:*}" region="${place#*:}"
    port=$((port + 1))
    agent_metrics=$((agent_metrics + 1))
    api_port=$((api_port + 1))
    local shop=""
    if [ "$h" = p1 ] || [ "$h" = p2 ]; then
      # shop: live traffic on nginx's port, a preview port, two slots.
      local live=$((shop_port + 1)) preview=$((shop_port + 2))
      local blue=$((shop_port + 3)) green=$((shop_port + 4))
      shop_port=$((shop_port + 4))
      shop=", {\"name\": \"shop\", ${user}\"blue_green\": {\"ports\": [$blue, $green]},
               \"start\": [\"$bin/drover-demo-service\", \"--port\", \"{port}\"],
               \"health\": \"http://127.0.0.1:{port}/health\", \"start_timeout_s\": 10,
               \"router\": {\"kind\": \"nginx\", \"conf_file\": \"$dir/nginx-$h/conf.d/drover-shop.conf\",
                          \"listen\": \"127.0.0.1:$live\", \"preview_listen\": \"127.0.0.1:$preview\",
                          \"command\": [\"nginx\", \"-p\", \"$dir/nginx-$h\", \"-c\", \"$dir/nginx-$h/nginx.conf\", \"-e\", \"$dir/nginx-$h/error.log\"],
                          \"preview_probe\": {\"path\": \"/work?user=probe\", \"requests\": 10}}}"
    fi
    cat >"$dir/$h.json" <<JSON
{"format": "drover.agent-config.v1", "host": "$h", "region": "$region", "cluster": "c1",
 "state_dir": "$dir/state-$h", "root_key": "$dir/root.key.pub", "join_token": "$join",
 "coordinator": {"requests": "tls+tcp://127.0.0.1:$requests", "announcements": "tls+tcp://127.0.0.1:$announcements",
                 "tls": {"ca_file": "$dir/coordinator-tls.crt", "server_name": "drover-coordinator"}},
 "poll_interval_ms": 1000, "health_interval_ms": 500, "mesh": {"announce_interval_s": 2},
 "metrics_listen": "127.0.0.1:$agent_metrics",
 "services": [{"name": "web", ${user}"port": $port,
               "start": ["$bin/drover-demo-service", "--port", "{port}"],
               "health": "http://127.0.0.1:{port}/health", "start_timeout_s": 10},
              {"name": "api", ${user}"port": $api_port,
               "start": ["$bin/drover-demo-service", "--port", "{port}"],
               "health": "http://127.0.0.1:{port}/health", "start_timeout_s": 10}$shop]}
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
  # Pushes to demo/web's main start the pipeline (POST /webhooks/scm), signed
  # with this secret; the login alice-gh is alice.
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/scm.secret")
  drover scm source demo/web --secret-file "$dir/scm.secret" >/dev/null
  drover scm login alice-gh alice >/dev/null
  drover token create alice --role approver >"$dir/alice.token"
  drover token create bob --role approver >"$dir/bob.token"
  drover pipeline apply -f tools/fleet-pipeline.yaml >/dev/null
  drover pipeline apply -f tools/fleet-shop-pipeline.yaml >/dev/null
  drover pipeline apply -f tools/fleet-api-pipeline.yaml >/dev/null
  # The release channel: a receiver that prints each notification it can
  # verify; the admin allows it, and the pipeline posts there, signed.
  local notify=$((base + 5))
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/notify.secret")
  start notify "$bin/drover" notify receive --listen "127.0.0.1:$notify" \
    --secret-file "$dir/notify.secret"
  drover notify allow "http://127.0.0.1:$notify/" >/dev/null
  drover notify add web release-channel --url "http://127.0.0.1:$notify/web" \
    --secret-file "$dir/notify.secret" >/dev/null
  echo "fleet: up in $dir: coordinator http://127.0.0.1:$api, origin, seeds of ${regions[*]}, agents ${hosts[*]}"
  cat <<TXT

Try it (each host's demo service answers on 127.0.0.1:$((base + 21))-$((base + 30))/version):
  source $dir/env
  eval "\$(drover completion bash)"                         # tab completion of verbs and flags
  drover pipeline show web                                 # staging, then production's gate and waves
  v1=\$(bash tools/fleet.sh release v1 error_rate=0.01 p99_ms=12)
  drover deploy web \$v1 --token \$(cat $dir/alice.token)  # alice starts it: staging first
  drover status web-1 --watch                              # live until it ends (Ctrl-C stops watching, not the deploy)
  drover approve web-1 --token \$(cat $dir/alice.token)    # refused: needs another person
  drover approve web-1 --token \$(cat $dir/bob.token)      # bob: production, wave by wave
  bash tools/fleet.sh push v2 alice-gh                      # alice pushes v2 to main: the push waits for its build
  bash tools/fleet.sh release v2 error_rate=0.01 'by_region={"eu-west-1":{"error_rate":0.4}}'  # bad only in eu-west-1
  drover approve web-2 --token \$(cat $dir/bob.token); drover status web-2
  drover hosts; drover audit --service web; drover audit verify
  a1=\$(SERVICE=api bash tools/fleet.sh release a1); v3=\$(bash tools/fleet.sh release v3 error_rate=0.01)
  printf 'services:\\n  - {pipeline_id: api, artifact_id: "%s"}\\n  - {pipeline_id: web, artifact_id: "%s"}\\n' \$a1 \$v3 >release.yaml
  drover release create -f release.yaml --token \$(cat $dir/alice.token)  # web first, then api, in each environment
  drover release approve rel-1 --token \$(cat $dir/bob.token)  # one approval for both at production's gate
  drover release status rel-1 --wait
  s1=\$(SERVICE=shop bash tools/fleet.sh release s1); drover deploy shop \$s1 --wait
  s2=\$(SERVICE=shop bash tools/fleet.sh release s2); drover deploy shop \$s2 --wait  # previewed, then flipped
  curl -s 127.0.0.1:$((base + 41))/version                 # shop's live traffic on p1, through nginx
  drover rollback shop-2 --wait                            # flips back to the warm slot
  drover flag set web checkout 25 --env production --wait  # a ramp: 1, 5, then 25%
  drover flag kill web checkout --env production           # off on every host at once
  curl -s 127.0.0.1:$((base + 90))/metrics | grep ^drover_coordinator_deploys  # Prometheus metrics (docs/METRICS.md):
                                                           # the coordinator $((base + 90)), origin $((base + 91)),
                                                           # seeds $((base + 92))-$((base + 96)), agents $((base + 100))-$((base + 109))
  bash tools/fleet.sh down
TXT
}

release() {
  [ $# -ge 1 ] || { echo "usage: fleet.sh release NAME [key=value ...]" >&2; exit 2; }
  # shellcheck disable=SC1091
  source "$dir/env"
  local name="$1"
  shift
  local service="${SERVICE:-web}"
  local tree="$dir/trees/$service-$name" json="{" sep=""
  mkdir -p "$tree"
  for kv in "$@"; do
    json="$json$sep\"${kv%%=*}\": ${kv#*=}"
    sep=", "
  done
  echo "$json}" >"$tree/demo.json"
  head -c 2000000 /dev/urandom >"$tree/payload"
  local id
  # Registered at the coordinator by the push itself (DROVER_COORDINATOR
  # and DROVER_TOKEN are set above).
  id="$(drover artifact push "$tree" --service "$service" --git-sha "$(printf '%s' "$name" | sha1sum | cut -c1-12)" --json |
    sed -n 's/.*"artifact_id":"\([^"]*\)".*/\1/p')"
  echo "$id"
}

# A push of release NAME's commit to demo/web's main by LOGIN, signed as the
# source host signs it; prints the coordinator's answer.
push_event() {
  # shellcheck disable=SC1091
  source "$dir/env"
  local sha body sig
  sha="$(printf '%s' "$1" | sha1sum | cut -c1-40)"
  body="{\"ref\":\"refs/heads/main\",\"after\":\"$sha\",\"repository\":{\"full_name\":\"demo/web\"},\"pusher\":{\"name\":\"$2\"}}"
  sig="$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$(cat "$dir/scm.secret")" | sed 's/^.* //')"
  curl -s -X POST -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: push-$1-$(date +%s%N)" \
    -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$body" "$DROVER_COORDINATOR/webhooks/scm"
  echo
}

# Waits until every service of release ID that reached ENV's gate waits there
# (or the release has ended).
wait_release_gate() {
  local id="$1" env="$2"
  for _ in $(seq 1 1200); do
    local j
    j="$(drover release status "$id" --json 2>/dev/null || true)"
    if echo "$j" | grep -q "\"$env\":\"awaiting_approval\""; then return 0; fi
    if echo "$j" | grep -q '"state":"\(succeeded\|failed\|rolled_back\|rejected\|superseded\)"'; then
      return 0
    fi
    sleep 0.5
  done
  echo "fleet: $id never reached the gate of $env" >&2
  return 1
}

# Waits until deploy ID is in STATE (or has ended), printing each new state line.
wait_state() {
  local id="$1" want="$2" last="" line state
  for _ in $(seq 1 1200); do
    # (a run a push starts appears once its build is registered)
    line="$( (drover status "$id" 2>/dev/null || true) | head -1)"
    [ -n "$line" ] && [ "$line" != "$last" ] && echo "$line"
    last="$line"
    state="$(echo "$line" | sed -n 's/^[^:]*: \([a-z_]*\).*/\1/p')"
    # A deploy that failed where it should not have: what the hosts said.
    if [ "$state" = failed ] && [ "$want" != failed ]; then
      echo "fleet: $id failed; the agents' failures:" >&2
      grep -h '"event":"\(apply_failed\|fetch_failed\|plan_refused\)"' "$dir"/*.out >&2 || true
    fi
    case "$state" in
      "$want" | succeeded | rolled_back | failed | rejected | expired) return 0 ;;
    esac
    sleep 0.5
  done
  echo "fleet: $id never reached $want" >&2
  return 1
}

# Every daemon's metrics port: the coordinator, the origin, the seeds, the agents.
metrics_ports() {
  local i
  echo $((base + 90)) $((base + 91))
  for i in $(seq 92 $((91 + ${#regions[@]}))); do echo $((base + i)); done
  for i in $(seq 100 $((99 + ${#hosts[@]}))); do echo $((base + i)); done
}

# Each daemon's scrape through promtool's linter (Prometheus's own rules).
check_scrapes() {
  local port n=0 bad=0 out
  for port in $(metrics_ports); do
    n=$((n + 1))
    if ! out="$(curl -sf "127.0.0.1:$port/metrics" | promtool check metrics 2>&1)"; then
      bad=$((bad + 1))
      echo "fleet: the scrape of 127.0.0.1:$port fails promtool: $out" >&2
    fi
  done
  echo "promtool check metrics: $n scrapes (coordinator, origin, ${#regions[@]} seeds, ${#hosts[@]} agents), $bad with problems"
  [ "$bad" -eq 0 ]
}

# Layer bytes every agent fetched so far, by where they came from:
# "ORIGIN SEEDS PEERS".
fetched_bytes() {
  local i origin=0 seed=0 peer=0 line
  for i in $(seq 100 $((99 + ${#hosts[@]}))); do
    while read -r line; do
      case "$line" in
        *'from="origin"'*) origin=$((origin + ${line##* })) ;;
        *'from="seed"'*) seed=$((seed + ${line##* })) ;;
        *'from="peer"'*) peer=$((peer + ${line##* })) ;;
      esac
    done < <(curl -sf "127.0.0.1:$((base + i))/metrics" |
      grep '^drover_mesh_bytes_total{direction="down"' | sed 's/\.[0-9]*$//; s/e+0*\([0-9]*\)$/e\1/')
  done
  echo "$origin $seed $peer"
}

# A row of the demo's summary for deploy ID, with the bytes fetched since
# BEFORE ("ORIGIN SEEDS PEERS" as fetched_bytes printed it).
summary_row() {
  local id="$1" before="$2" after d
  after="$(fetched_bytes)"
  d="$(drover status "$id" --json)"
  read -r o0 s0 p0 <<<"$before"
  read -r o1 s1 p1 <<<"$after"
  python3 - "$d" $((o1 - o0)) $((s1 - s0)) $((p1 - p0)) >>"$dir/summary.txt" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
mib = lambda b: "%.1f" % (int(b) / 1048576)
took = (d.get("completed_ms") or 0) - d.get("created_ms", 0)
rb = (d.get("rollback") or {}).get("duration_ms")
# What its hosts ran when it ended (host: release), from the deploy's view.
final = {}
for h in d.get("hosts", []):
    final.setdefault((h.get("running") or "unknown")[7:19] or "unknown", []).append(h["host"])
hosts = ", ".join("%s %s" % (v, ",".join(sorted(hs))) for v, hs in sorted(final.items()))
print("%-7s %-12s %-13s %8.1f s %12s %8s %8s %8s  %s" % (
    d["deploy_id"], d["artifact_id"][7:19], d["state"], took / 1000,
    "-" if rb is None else "%.1f s" % (rb / 1000), mib(sys.argv[2]), mib(sys.argv[3]),
    mib(sys.argv[4]), hosts))
PY
}

demo() {
  trap 'down >/dev/null' EXIT
  up >/dev/null
  # shellcheck disable=SC1091
  source "$dir/env"
  local alice bob
  alice="$(cat "$dir/alice.token")"
  bob="$(cat "$dir/bob.token")"
  step() { printf '\n== %s\n' "$*"; }
  step "ten agents on loopback in two environments and five regions ($dir)"
  drover hosts
  step "every daemon serves Prometheus metrics; each scrape passes promtool"
  check_scrapes
  printf '%-7s %-12s %-13s %10s %12s %8s %8s %8s  %s\n' deploy artifact outcome took rollback \
    "origin" "seeds" "peers" "hosts on each release at its end" >"$dir/summary.txt"
  printf '%-7s %-12s %-13s %10s %12s %8s %8s %8s\n' "" "" "" "" "" "MiB" "MiB" "MiB" \
    >>"$dir/summary.txt"
  local bytes
  step "the pipeline (tools/fleet-pipeline.yaml): staging, then a gate, then production in three waves"
  drover pipeline show web
  step "v1: alice starts it; staging, then the gate"
  v1="$(release v1 error_rate=0.01 p99_ms=12)"
  bytes="$(fetched_bytes)"
  drover deploy web "$v1" --token "$alice"
  wait_state web-1 awaiting_approval
  step "alice may not approve her own release (four eyes); bob does; then watched live to its end"
  drover approve web-1 --token "$alice" || true
  drover approve web-1 --token "$bob" --comment "staging is green"
  drover status web-1 --watch --timeout 600
  drover status web-1
  summary_row web-1 "$bytes"
  step "alice pushes v2 to main: the push waits for its build, which starts the pipeline"
  bytes="$(fetched_bytes)"
  push_event v2 alice-gh
  release v2 error_rate=0.01 p99_ms=12 'by_region={"eu-west-1":{"error_rate":0.4}}' >/dev/null
  step "v2 errors 40x more in eu-west-1 only: staging passes, bob approves, the second wave fails (watched live)"
  wait_state web-2 awaiting_approval
  drover approve web-2 --token "$bob"
  drover status web-2 --watch --timeout 600 || echo "(exit $?: rolled back, docs/CLI.md \"Exit codes\")"
  summary_row web-2 "$bytes"
  step "production rolled back (the second wave first, then the canary region); staging keeps v2"
  drover status web-2
  step "the audit log"
  drover audit --service web | tail -12
  drover audit verify
  step "what the release channel heard (signed notifications, once each)"
  local i
  for i in $(seq 100); do
    grep -q '^rollback.done' "$dir/notify.out" 2>/dev/null && break
    sleep 0.1
  done
  cat "$dir/notify.out"
  step "a release of two services (api depends on web): web goes first in each environment, api after web's watch"
  local a1 v3
  bytes="$(fetched_bytes)"
  a1="$(SERVICE=api release a1 error_rate=0.01 p99_ms=12)"
  v3="$(release v3 error_rate=0.01 p99_ms=12)"
  printf 'services:\n  - {pipeline_id: api, artifact_id: "%s"}\n  - {pipeline_id: web, artifact_id: "%s"}\n' \
    "$a1" "$v3" >"$dir/release.yaml"
  cat "$dir/release.yaml"
  drover release create -f "$dir/release.yaml" --token "$alice"
  wait_release_gate rel-1 production
  drover release status rel-1
  step "one approval at production's gate for the whole release (bob), recorded per service"
  drover release approve rel-1 --token "$bob" --comment "staging is green for both" >/dev/null
  drover release status rel-1 --wait
  drover release status rel-1
  drover audit show web-3 | grep gate.approved
  drover audit show api-1 | grep gate.approved
  summary_row web-3 "$bytes"
  summary_row api-1 "$(fetched_bytes)"  # (its bytes are counted in web-3's row)
  step "blue/green on a real nginx: shop on p1 and p2; s2 starts beside s1 at no traffic, is previewed, then flips"
  local s1 s2 live=$((base + 41))
  s1="$(SERVICE=shop release s1)"
  bytes="$(fetched_bytes)"
  drover deploy shop "$s1" --wait >/dev/null
  summary_row shop-1 "$bytes"
  echo "live traffic on p1 (nginx 127.0.0.1:$live): $(curl -s "127.0.0.1:$live/version" | sed 's/.*"pid":\([0-9]*\),"release":"sha256:\(.\{12\}\).*/release \2, pid \1/')"
  s2="$(SERVICE=shop release s2)"
  bytes="$(fetched_bytes)"
  drover deploy shop "$s2" --wait
  drover status shop-2
  echo "live traffic on p1 now: $(curl -s "127.0.0.1:$live/version" | sed 's/.*"pid":\([0-9]*\),"release":"sha256:\(.\{12\}\).*/release \2, pid \1/')"
  step "the flip back: s1's slot was still warm (the same pid), nothing is downloaded"
  drover rollback shop-2 --reason "flip back" --wait
  echo "live traffic on p1 now: $(curl -s "127.0.0.1:$live/version" | sed 's/.*"pid":\([0-9]*\),"release":"sha256:\(.\{12\}\).*/release \2, pid \1/')"
  summary_row shop-2 "$bytes"
  step "feature flags: web's checkout at 25% in production at once (an approver's --now), then killed"
  drover flag set web checkout 25 --env production --now
  sleep 2
  echo "p1's flags file: $(curl -s "127.0.0.1:$((base + 23))/version" | sed 's/.*"flags":{\([^}]*\)}.*/\1/')"
  drover flag kill web checkout --env production
  sleep 2
  echo "p1's flags file: $(curl -s "127.0.0.1:$((base + 23))/version" | sed 's/.*"flags":{\([^}]*\)}.*/\1/')"
  drover flag ls web
  step "every deploy of this walk: outcome, time, rollback, layer bytes the agents fetched by source"
  cat "$dir/summary.txt"
  step "what each host runs now"
  drover hosts
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  release) shift; release "$@" ;;
  push) shift; push_event "$@" ;;
  demo) demo ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
