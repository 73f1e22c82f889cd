#!/bin/sh
# Make sure the system programs a target needs are installed.
# Usage: scripts/system-deps.sh run|test|js   (js: only what the JavaScript checks need)
# As root with apt-get, missing packages are installed; elsewhere this prints
# exactly what to install and fails, so no test is ever skipped for a missing tool.
# The browser tests drive Debian's own Chromium (/usr/bin/chromium) through
# Playwright: never `playwright install`, which downloads a browser build.
set -eu

need=""
have_python_venv() { python3 -c "import ensurepip, venv" >/dev/null 2>&1; }
have() { command -v "$1" >/dev/null 2>&1; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
# A font the page's text renders with; without any, Chromium draws no glyphs.
have_font() { [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; }
# The JavaScript lint and unit tests (make js-lint, make js-test): Node 18 or
# newer for its test runner, npm to install the pinned Biome from package-lock.json.
have_node() { have node && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; }
have_js_tools() { have_node && have npm; }

mode="${1:-run}"
if [ "$mode" = "js" ]; then
    have_js_tools || need="$need nodejs npm"
else
    have python3 && have_python_venv || need="$need python3 python3-venv"
fi
if [ "$mode" = "test" ]; then
    have_js_tools || need="$need nodejs npm"
    have redis-server || need="$need redis-server"
    { [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ]; } || need="$need postgresql"
    [ -x /usr/bin/chromium ] || need="$need chromium"
    have_font || need="$need fonts-dejavu-core"
    # The bench's scale-out scenario puts nginx in front of two daphnes.
    have nginx || [ -x /usr/sbin/nginx ] || need="$need nginx"
    # The backup procedure of docs/deploy.md (tests/test_backup_restore.py).
    have sqlite3 || need="$need sqlite3"
    # promtool checks docs/alerts.yml; the live scrape test runs prometheus.
    { have promtool && have prometheus; } || need="$need prometheus"
fi

[ -z "$need" ] && exit 0

if [ "$(id -u)" = "0" ] && have apt-get; then
    echo "Installing system packages:$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
    # Debian starts services it installs; the tests run their own copies.
    for service in redis-server postgresql nginx prometheus; do
        if have systemctl; then systemctl stop "$service" >/dev/null 2>&1 || true; fi
        service "$service" stop >/dev/null 2>&1 || true
    done
    exit 0
fi

echo "Missing system packages:$need" >&2
echo "Install them with:  sudo apt-get install$need" >&2
exit 1
