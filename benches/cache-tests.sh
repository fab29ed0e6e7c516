#!/usr/bin/env bash
# Run the HTTP caching conformance suite (https://github.com/http-tests/cache-tests)
# through a fleetcache node in origin mode, and summarise the results with the
# suite's own verdict logic (test-engine/lib/results.mjs: determineTestResult).
#
# Usage: benches/cache-tests.sh SUITE_DIR
#
#   SUITE_DIR   a checkout of http-tests/cache-tests with `npm install` done
#               (kept outside this repository).
#
# Environment:
#   FLEETCACHE_BIN    use this fleetcache binary instead of building one
#                     (default: `cargo build --release -p fleetcache-gateway`).
#   CACHE_TESTS_OUT   where to save the raw JSON results (default:
#                     ${TMPDIR:-/tmp}/fleetcache-cache-tests-<timestamp>.json);
#                     the node and origin logs go next to it (.node.log,
#                     .origin.log, .cli.log).
#   CACHE_TESTS_ID    run only this test id, printing the suite's request/
#                     response dump and its verdict instead of a summary.
#
# Published required-test scores, for comparison (cache-tests.fyi, counted the
# same way, out of 163 required tests of which 3 are browser-only and never
# run against a proxy): ATS 132, Squid 122, Varnish 119, nginx 99.
#
# CI does not run this script: it needs node/npm and the suite checkout.

set -euo pipefail

usage() {
  echo "usage: $0 SUITE_DIR" >&2
  echo "  SUITE_DIR: a checkout of https://github.com/http-tests/cache-tests after 'npm install'" >&2
}

if [[ $# -ne 1 || -z "${1:-}" ]]; then
  usage
  exit 64
fi

SUITE_DIR=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

for tool in node curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool is required" >&2
    exit 69
  fi
done
for f in test-engine/cli.mjs test-engine/server/server.mjs test-engine/lib/results.mjs tests/index.mjs; do
  if [[ ! -f "$SUITE_DIR/$f" ]]; then
    echo "error: $SUITE_DIR does not look like http-tests/cache-tests (no $f)" >&2
    exit 66
  fi
done
if [[ ! -d "$SUITE_DIR/node_modules" ]]; then
  echo "error: run 'npm install' in $SUITE_DIR first" >&2
  exit 66
fi

# --- 1. the binary ----------------------------------------------------------
if [[ -n "${FLEETCACHE_BIN:-}" ]]; then
  BIN=$FLEETCACHE_BIN
else
  echo "==> building fleetcache (release)" >&2
  (cd "$ROOT" && cargo build --release -p fleetcache-gateway >&2)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fleetcache"
fi
if [[ ! -x "$BIN" ]]; then
  echo "error: $BIN is not an executable" >&2
  exit 66
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

# --- scratch space, outputs, cleanup ---------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleetcache-cache-tests.XXXXXX")
OUT=${CACHE_TESTS_OUT:-${TMPDIR:-/tmp}/fleetcache-cache-tests-$(date +%Y%m%d-%H%M%S).json}
mkdir -p "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
LOG_BASE=${OUT%.json}
ORIGIN_LOG=$LOG_BASE.origin.log
NODE_LOG=$LOG_BASE.node.log
CLI_LOG=$LOG_BASE.cli.log

ORIGIN_PID=""
NODE_PID=""

stop() { # stop PID: TERM, wait up to 5 s, then KILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "(pid $pid ignored TERM after ${i}x0.1s; killing)" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$NODE_PID" ]]; then stop "$NODE_PID"; fi
  if [[ -n "$ORIGIN_PID" ]]; then stop "$ORIGIN_PID"; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { # a currently free loopback TCP port
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}

wait_http() { # wait_http URL PID WHAT LOG: until URL answers with status $5 (any if empty)
  local url=$1 pid=$2 what=$3 log=$4 want=${5:-} code i
  for i in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $what exited before answering; last lines of $log:" >&2
      tail -n 30 "$log" >&2 || true
      exit 70
    fi
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)
    if [[ "$code" != "000" && ( -z "$want" || "$code" == "$want" ) ]]; then
      return 0
    fi
    sleep 0.1
  done
  echo "error: $what did not answer at $url after ${i}x0.1s; last lines of $log:" >&2
  tail -n 30 "$log" >&2 || true
  exit 70
}

# --- 2. the suite's origin server --------------------------------------------
# The same as `npm run server --port=P --pidfile=F`, without npm's extra shell
# in between, so that the PID we hold is the server's.
ORIGIN_PORT=$(free_port)
ORIGIN=http://127.0.0.1:$ORIGIN_PORT
echo "==> starting the suite's origin on $ORIGIN (log: $ORIGIN_LOG)" >&2
(
  cd "$SUITE_DIR"
  exec env npm_config_protocol=http npm_config_port="$ORIGIN_PORT" \
    npm_config_pidfile="$WORK/origin.pid" \
    node test-engine/server/server.mjs
) >"$ORIGIN_LOG" 2>&1 &
ORIGIN_PID=$!
wait_http "$ORIGIN/" "$ORIGIN_PID" "the origin" "$ORIGIN_LOG"

# --- 3. the fleetcache node in front of it -----------------------------------
LISTEN_PORT=$(free_port)
ADMIN_PORT=$(free_port)
while [[ "$ADMIN_PORT" == "$LISTEN_PORT" ]]; do ADMIN_PORT=$(free_port); done
NODE=http://127.0.0.1:$LISTEN_PORT
ADMIN=http://127.0.0.1:$ADMIN_PORT
mkdir -p "$WORK/data"
echo "==> starting fleetcache on $NODE, admin $ADMIN (log: $NODE_LOG)" >&2
# No FLEETCACHE_* variable reaches the node (it refuses unknown ones, such as
# FLEETCACHE_BIN, and a stray FLEETCACHE_CONFIG would change what is tested):
# embedded defaults plus these flags only.
UNSET=()
while IFS= read -r var; do UNSET+=(-u "$var"); done < <(compgen -e | grep '^FLEETCACHE_' || true)
env "${UNSET[@]}" "$BIN" serve \
  --listen "127.0.0.1:$LISTEN_PORT" \
  --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --data-dir "$WORK/data" \
  --origin "$ORIGIN" \
  >"$NODE_LOG" 2>&1 &
NODE_PID=$!
wait_http "$ADMIN/readyz" "$NODE_PID" "fleetcache" "$NODE_LOG" 200

# --- 4. the suite, through the node -------------------------------------------
# `npm run cli --base=URL [--id=ID]`, again without npm in between.
run_cli() { # run_cli ID
  (
    cd "$SUITE_DIR"
    # cli.mjs reads npm_config_X || npm_package_config_X, as `npm run` sets them;
    # an empty id means the whole suite.
    exec env npm_config_base="$NODE" npm_package_config_base="$NODE" \
      npm_config_id="$1" npm_package_config_id="$1" \
      node --no-warnings test-engine/cli.mjs
  )
}

repro() {
  echo "==> reproduce this run with:"
  echo "    FLEETCACHE_BIN=$BIN ${CACHE_TESTS_ID:+CACHE_TESTS_ID=$CACHE_TESTS_ID }$ROOT/benches/cache-tests.sh $SUITE_DIR"
  echo "    or by hand:"
  echo "    (cd $SUITE_DIR && npm run server --port=$ORIGIN_PORT)"
  echo "    $BIN serve --listen 127.0.0.1:$LISTEN_PORT --admin-listen 127.0.0.1:$ADMIN_PORT --data-dir \$(mktemp -d) --origin $ORIGIN"
  echo "    (cd $SUITE_DIR && npm run --silent cli --base=$NODE${CACHE_TESTS_ID:+ --id=$CACHE_TESTS_ID})"
}

if [[ -n "${CACHE_TESTS_ID:-}" ]]; then
  echo "==> running test $CACHE_TESTS_ID against $NODE" >&2
  run_cli "$CACHE_TESTS_ID"
  repro
  exit 0
fi

echo "==> running the suite against $NODE (takes a few minutes)" >&2
if ! run_cli "" >"$OUT" 2>"$CLI_LOG"; then
  echo "error: the suite's client failed; last lines of $CLI_LOG:" >&2
  tail -n 30 "$CLI_LOG" >&2 || true
  exit 70
fi
echo "==> raw results: $OUT" >&2

# --- 5. summary with the suite's own verdicts -----------------------------------
SUMMARY_JS=$WORK/summary.mjs
cat >"$SUMMARY_JS" <<'EOF'
// Summarise a cache-tests results file with the suite's own verdict function.
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, resultsFile] = process.argv.slice(2)
const load = rel => import(pathToFileURL(path.join(suiteDir, rel)).href)
const { determineTestResult, resultTypes } = await load('test-engine/lib/results.mjs')
const testSuites = (await load('tests/index.mjs')).default
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))

const verdictName = v => Object.keys(resultTypes).find(k => resultTypes[k] === v) || String(v)
// The suite's display counts pass and yes as passing (results.mjs passTypes).
const passing = new Set(['pass', 'yes'])
const kinds = {}
const notPassed = {}
for (const suite of testSuites) {
  for (const test of suite.tests) {
    const kind = test.kind || 'required' // results.mjs treats a missing kind as required
    const verdict = verdictName(determineTestResult(testSuites, test.id, results))
    const k = (kinds[kind] ??= { total: 0, passed: 0, verdicts: {} })
    k.total++
    k.verdicts[verdict] = (k.verdicts[verdict] || 0) + 1
    if (passing.has(verdict)) k.passed++
    else if (verdict !== 'untested') {
      (notPassed[kind] ??= []).push({ id: test.id, suite: suite.name, name: test.name, verdict, detail: results[test.id] })
    }
  }
}

const order = ['required', 'optimal', 'check', ...Object.keys(kinds).filter(k => !['required', 'optimal', 'check'].includes(k))]
console.log('==> tests passed per kind (suite verdicts: determineTestResult in test-engine/lib/results.mjs)')
for (const kind of order) {
  const k = kinds[kind]
  if (!k) continue
  const breakdown = Object.entries(k.verdicts).sort((a, b) => b[1] - a[1]).map(([v, n]) => `${v} ${n}`).join(', ')
  const word = kind === 'check' ? 'passed ("yes"; checks are informational)' : 'passed'
  console.log(`${kind}: ${k.passed} of ${k.total} ${word}  [${breakdown}]`)
}

const detail = d => Array.isArray(d) ? `${d[0]}: ${d[1]}` : (d === undefined ? 'not run' : JSON.stringify(d))
const list = (title, rows) => {
  console.log(`\n==> ${title} (${rows.length})`)
  for (const r of rows) {
    console.log(`${r.id}  [${r.verdict}]  ${r.suite}: ${r.name}`)
    console.log(`    ${detail(r.detail)}`)
  }
}
list('required tests not passed', notPassed.required || [])
list('optimal tests not passed', notPassed.optimal || [])
EOF
(cd "$SUITE_DIR" && node "$SUMMARY_JS" "$SUITE_DIR" "$OUT")
echo
echo "raw results: $OUT"
echo "logs: $NODE_LOG $ORIGIN_LOG $CLI_LOG"
repro
