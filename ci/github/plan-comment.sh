#!/usr/bin/env bash
# The pull-request check: validate the plans, lint the migrations and plan ENVIRONMENT, then put
# all three into the job summary and into the pull request's one dbops comment (posted, or
# updated in place). Lint findings are shown even when lint refuses a migration; the step fails
# afterwards when validation, lint or the plan failed ("changes" is not a failure).
#
# Needs: DBOPS_ENVIRONMENT, the plan's DB_* variables (a read-only role suffices: see the
# README's "CI"), and for the comment DBOPS_COMMENT=true with what pr-comment.sh needs.
# Writes: GITHUB_OUTPUT (validate/lint/plan exit codes, comment-url), GITHUB_STEP_SUMMARY.
set -euo pipefail

environment="${DBOPS_ENVIRONMENT:?DBOPS_ENVIRONMENT names the plan to check}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
limit=60000  # a comment holds at most 65536 characters; the job summary holds everything

set +e
dbops validate > "$work/validate.txt" 2>&1
validate=$?
dbops migrate lint --env "$environment" > "$work/lint.txt" 2>&1
lint=$?
dbops plan "$environment" --diff --format markdown > "$work/plan.md" 2> "$work/plan.err"
plan=$?
set -e

verdict() {  # verdict EXIT_CODE: what an exit code of validate or lint means, for people
  if [ "$1" -eq 0 ]; then echo "passed"; else echo "**failed** (exit $1)"; fi
}

fenced() {  # fenced FILE: the file as a code block (empty output said as such)
  echo '```'
  if [ -s "$1" ]; then cat "$1"; else echo "(no output)"; fi
  echo '```'
}

{
  echo "<!-- dbops-plan -->"
  echo "<!-- dbops-environment: $environment -->"
  echo "## dbops: $environment"
  echo
  echo "- validate: $(verdict "$validate")"
  echo "- migrate lint: $(verdict "$lint")"
  case "$plan" in
    0) echo "- plan: no changes" ;;
    2) echo "- plan: changes (below)" ;;
    *) echo "- plan: **failed** (exit $plan)" ;;
  esac
  if [ "$validate" -ne 0 ]; then
    echo
    echo "### Validation"
    fenced "$work/validate.txt"
  fi
  echo
  echo "### Migration lint"
  fenced "$work/lint.txt"
  echo
  if [ "$plan" -eq 0 ] || [ "$plan" -eq 2 ]; then
    cat "$work/plan.md"
  else
    echo "### Plan"
    fenced "$work/plan.err"
  fi
} > "$work/report.md"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$work/report.md" >> "$GITHUB_STEP_SUMMARY"
fi

url=""
if [ "${DBOPS_COMMENT:-true}" = "true" ]; then
  if [ "$(wc -c < "$work/report.md")" -gt "$limit" ]; then
    head -c "$limit" "$work/report.md" | sed '$d' > "$work/comment.md"
    if [ "$(grep -c '<details>' "$work/comment.md")" -gt "$(grep -c '</details>' "$work/comment.md")" ]; then
      printf '\n</details>\n' >> "$work/comment.md"
    fi
    run="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}"
    printf '\nThe report is cut short here; the [job summary](%s) has all of it.\n' "$run" \
      >> "$work/comment.md"
  else
    cp "$work/report.md" "$work/comment.md"
  fi
  url="$("$here/pr-comment.sh" "$work/comment.md")"
fi

if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    echo "validate-exit-code=$validate"
    echo "lint-exit-code=$lint"
    echo "plan-exit-code=$plan"
    echo "comment-url=$url"
  } >> "$GITHUB_OUTPUT"
fi

failed=0
if [ "$validate" -ne 0 ]; then
  echo "::error title=dbops validate failed::the plans do not validate (see the job summary)"
  failed=1
fi
if [ "$lint" -ne 0 ]; then
  echo "::error title=dbops migrate lint failed::a migration is refused by lint (see the job summary)"
  failed=1
fi
if [ "$plan" -ne 0 ] && [ "$plan" -ne 2 ]; then
  echo "::error title=dbops plan failed::the plan for $environment exited with $plan"
  failed=1
fi
exit "$failed"
