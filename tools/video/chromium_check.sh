#!/usr/bin/env bash
# Plays sadtalker-video's MP4s in headless Chromium (through ChromeDriver) and checks that each loads,
# reports the expected duration, and plays to the `ended` event: the proof that browsers accept the
# files (H.264 + AAC or FLAC, edit lists, interleaving), beyond what ffprobe says.
#
# Usage: tools/video/chromium_check.sh [DIR]
#   DIR: where to write the sample videos (default: a temporary folder, removed afterwards).
# Needs: chromium, chromedriver (Debian: apt-get install -y chromium chromium-driver), curl, cargo.
# Exit status: 0 all played; 1 a check failed; 77 a tool is missing (the check was skipped).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in chromium chromedriver curl cargo; do
  if ! command -v "$tool" > /dev/null; then
    echo "NOTICE: $tool not found: skipping the Chromium playback check" >&2
    exit 77
  fi
done

work=${1:-}
cleanup_dir=
if [ -z "$work" ]; then
  work=$(mktemp -d)
  cleanup_dir=$work
fi
mkdir -p "$work"
profile=$(mktemp -d)
driver_pid=
cleanup() {
  if [ -n "$driver_pid" ]; then kill "$driver_pid" 2> /dev/null || true; fi
  rm -rf "$profile"
  if [ -n "$cleanup_dir" ]; then rm -rf "$cleanup_dir"; fi
}
trap cleanup EXIT

echo "== writing sample videos into $work"
(cd "$root" && cargo run -q -p sadtalker-video --example write_samples -- "$work") > /dev/null

cat > "$work/player.html" << 'HTML'
<!doctype html>
<meta charset="utf-8">
<title>sadtalker-video playback check</title>
<video id="v" muted playsinline preload="auto"></video>
<script>
// Loads `src`, plays it to the end; resolves with what the browser saw.
function check(src, timeoutMs) {
  return new Promise((resolve) => {
    const v = document.getElementById('v');
    const result = { src, duration: null, ended: false, error: null, width: 0, height: 0, currentTime: 0 };
    const finish = () => {
      result.currentTime = v.currentTime;
      result.width = v.videoWidth;
      result.height = v.videoHeight;
      if (result.duration === null && isFinite(v.duration)) result.duration = v.duration;
      resolve(result);
    };
    const timer = setTimeout(() => { result.error = 'timeout'; finish(); }, timeoutMs);
    v.onloadedmetadata = () => { result.duration = v.duration; v.playbackRate = 4; v.play().catch((e) => { result.error = 'play: ' + e; }); };
    v.onended = () => { result.ended = true; clearTimeout(timer); finish(); };
    v.onerror = () => { result.error = 'media error ' + (v.error && v.error.code) + ' ' + (v.error && v.error.message); clearTimeout(timer); finish(); };
    v.src = src;
  });
}
</script>
HTML

port=$(( 20000 + RANDOM % 20000 ))
chromedriver --port="$port" > "$profile/chromedriver.log" 2>&1 &
driver_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 50); do
  curl -sf "$base/status" > /dev/null 2>&1 && break
  sleep 0.2
done

# Flags: headless as root in a sandbox-less container, and no background network (the machine has none).
caps=$(cat << JSON
{"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
  "binary": "$(command -v chromium)",
  "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--autoplay-policy=no-user-gesture-required", "--allow-file-access-from-files",
           "--user-data-dir=$profile/chrome"]}}}}
JSON
)
session=$(curl -sf -X POST -H 'Content-Type: application/json' -d "$caps" "$base/session" \
  | sed -n 's/.*"sessionId":"\([^"]*\)".*/\1/p')
if [ -z "$session" ]; then
  echo "FAIL: could not start Chromium through ChromeDriver" >&2
  cat "$profile/chromedriver.log" >&2
  exit 1
fi
curl -sf -X POST -H 'Content-Type: application/json' -d '{"script": 30000, "pageLoad": 30000}' \
  "$base/session/$session/timeouts" > /dev/null
curl -sf -X POST -H 'Content-Type: application/json' -d "{\"url\": \"file://$work/player.html\"}" \
  "$base/session/$session/url" > /dev/null

failed=0
while read -r name expected; do
  script='const done = arguments[arguments.length - 1]; check(arguments[0], 25000).then((r) => done(JSON.stringify(r)));'
  body=$(printf '{"script": "%s", "args": ["%s"]}' "$script" "file://$work/$name")
  reply=$(curl -s -X POST -H 'Content-Type: application/json' -d "$body" "$base/session/$session/execute/async")
  # The reply is {"value": "<JSON string>"}; pull the fields out of the escaped JSON.
  value=$(printf '%s' "$reply" | sed 's/\\"/"/g')
  duration=$(printf '%s' "$value" | sed -n 's/.*"duration":\([0-9.]*\).*/\1/p')
  ended=$(printf '%s' "$value" | sed -n 's/.*"ended":\(true\|false\).*/\1/p')
  error=$(printf '%s' "$value" | sed -n 's/.*"error":\("[^"]*"\|null\).*/\1/p')
  ok=$(awk -v d="${duration:-0}" -v e="$expected" 'BEGIN { print (d - e < 0.05 && e - d < 0.05) ? "yes" : "no" }')
  if [ "$ended" = "true" ] && [ "$ok" = "yes" ] && [ "$error" = "null" ]; then
    echo "ok   $name: duration $duration s (expected $expected), played to 'ended'"
  else
    echo "FAIL $name: duration ${duration:-?} s (expected $expected), ended=${ended:-?}, error=${error:-?}"
    echo "     reply: $reply"
    failed=1
  fi
done < "$work/expected.txt"

curl -s -X DELETE "$base/session/$session" > /dev/null || true
if [ "$failed" -ne 0 ]; then
  echo "Chromium playback check FAILED" >&2
  exit 1
fi
echo "Chromium playback check passed"
