#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs them.
#
# - redis-server and redis-cli (redis-tools): the integration tests start
#   their own servers (own socket or port, own temp dir) and their own
#   Redis Cluster (`redis-cli --cluster create`), so both must be on PATH.
# - chromium and chromium-driver: the browser test drives a headless
#   Chromium through chromedriver.
# - Python with feedparser, openapi-spec-validator and schemathesis, in a
#   virtualenv under target/: independent checks of the Atom feeds and the
#   OpenAPI document, and schemathesis's requests against the live server.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

venv=target/test-python
if ! "$venv/bin/python" -c "import feedparser, openapi_spec_validator, schemathesis" >/dev/null 2>&1; then
  echo "installing feedparser, openapi-spec-validator and schemathesis into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "feedparser==6.0.*" "openapi-spec-validator==0.9.*" "schemathesis==4.32.*"
fi
export OUTAGEWATCH_TEST_PYTHON="$PWD/$venv/bin/python"

cargo test --locked "$@"
