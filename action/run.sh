#!/usr/bin/env bash
# The GitHub Action's one step: fetch the eb-deploy release binary for this runner (cached in the
# tool cache), verify its sha256, pass the non-empty inputs as EB_* variables, run it. Inputs arrive
# as INPUT_* through `env:` (never interpolated into the script). EB_ACTION_DOWNLOAD_BASE overrides
# the release URL (the tests point it at a local folder).
set -euo pipefail

fail() {
  echo "::error title=eb-deploy action::$*"
  exit 2
}

[ "${RUNNER_OS:-Linux}" = Linux ] || fail "eb-deploy runs on Linux runners, not ${RUNNER_OS}"
case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) fail "no eb-deploy build for $(uname -m)" ;;
esac

version=${INPUT_VERSION:-${ACTION_REF:-}}
case "$version" in
  v[0-9]*.*.*) ;;
  *) fail "cannot tell which eb-deploy release to run from '${version}': use the action at a release tag (uses: OWNER/eb-deploy@v0.1.0) or set the version input" ;;
esac
repository=${ACTION_REPOSITORY:-eb-deploy/eb-deploy}
asset=eb-deploy-$arch-unknown-linux-gnu
base=${EB_ACTION_DOWNLOAD_BASE:-https://github.com/$repository/releases/download/$version}
cache=${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/eb-deploy/$version/$arch
bin=$cache/eb-deploy

if [ ! -x "$bin" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  curl -fsSL --retry 3 --proto '=https,file' -o "$tmp/$asset" "$base/$asset" \
    || fail "could not download $base/$asset"
  if [ -n "${INPUT_BINARY_SHA256:-}" ]; then
    expected=$INPUT_BINARY_SHA256
  else
    curl -fsSL --retry 3 --proto '=https,file' -o "$tmp/SHA256SUMS" "$base/SHA256SUMS" \
      || fail "could not download $base/SHA256SUMS"
    expected=$(awk -v a="$asset" '$2 == a || $2 == "*" a { print $1 }' "$tmp/SHA256SUMS")
  fi
  [ -n "$expected" ] || fail "no sha256 for $asset"
  actual=$(sha256sum "$tmp/$asset" | cut -d' ' -f1)
  [ "$actual" = "$expected" ] || fail "sha256 mismatch for $asset: expected $expected, got $actual"
  mkdir -p "$cache"
  install -m 0755 "$tmp/$asset" "$bin"
fi

# Only inputs that were given: an empty EB_* value is an error by design (a missing CI secret).
pass() {
  local input=$1 var=$2
  if [ -n "${!input:-}" ]; then
    export "$var=${!input}"
  fi
}
pass INPUT_APP EB_APP
pass INPUT_ENV EB_ENV
pass INPUT_BUCKET_NAME EB_BUCKET_NAME
pass INPUT_BUCKET_PATH EB_BUCKET_PATH
pass INPUT_REGION EB_REGION
pass INPUT_BRANCH EB_BRANCH
pass INPUT_BUNDLE_DIR EB_BUNDLE_DIR
pass INPUT_ZIP_FILE EB_ZIP_FILE
pass INPUT_LABEL EB_LABEL
pass INPUT_DESCRIPTION EB_DESCRIPTION
pass INPUT_ONLY_CREATE_APP_VERSION EB_ONLY_CREATE_APP_VERSION
pass INPUT_DRY_RUN EB_DRY_RUN
pass INPUT_WAIT EB_WAIT
pass INPUT_WAIT_TIMEOUT EB_WAIT_TIMEOUT
pass INPUT_HEALTH EB_HEALTH
pass INPUT_ROLE_TO_ASSUME EB_ROLE_ARN
pass INPUT_ROLE_DURATION EB_ROLE_DURATION
exec "$bin"
