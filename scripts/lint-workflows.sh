#!/usr/bin/env bash
# The GitHub workflows (.github/workflows), checked offline: against GitHub's workflow schema
# (check-jsonschema's vendored copy) and by zizmor's audits (permissions, credentials,
# injection, pinning; .github/zizmor.yml). Run by .ci/run; the tools come from scripts/setup.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=.venv/bin
workflows=(.github/workflows/*.yml)
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
"$bin/zizmor" --offline --no-progress --config .github/zizmor.yml "${workflows[@]}"
