#!/usr/bin/env bash
# The scheduled drift check of ENVIRONMENT: the report as DBOPS_DRIFT_REPORT (JSON) and in the
# job summary, an annotation, and the exit code as the `exit-code` output. Exits 0 itself, so
# the steps after it (keeping the report) still run; the action fails in a later step on
# out-of-band drift (2) or an error, and only warns on pending configuration (3).
set -euo pipefail

environment="${DBOPS_ENVIRONMENT:?DBOPS_ENVIRONMENT names the plan to check}"
report="${DBOPS_DRIFT_REPORT:-drift-$environment.json}"

set +e
dbops drift "$environment" --format json > "$report"
code=$?
set -e

case "$code" in
  0) echo "$environment: in sync with its plan and the last apply" ;;
  2) echo "::error title=Out-of-band drift in $environment::the live database differs from the last apply; see $report" ;;
  3) echo "::warning title=Pending configuration in $environment::the plan has changes not yet applied" ;;
  *) echo "::error title=Drift check failed in $environment::dbops drift exited with $code" ;;
esac

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "## dbops drift: $environment (exit $code)"
    echo
    echo '```json'
    cat "$report"
    echo '```'
  } >> "$GITHUB_STEP_SUMMARY"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    echo "exit-code=$code"
    echo "report=$report"
  } >> "$GITHUB_OUTPUT"
fi
