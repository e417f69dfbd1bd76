#!/usr/bin/env bash
# Post BODY_FILE as the pull request's dbops comment, or update the comment this action posted
# before (found by the hidden markers on its first lines), so a pull request has one of them.
#
# Needs: GITHUB_EVENT_PATH (a pull_request event), GITHUB_REPOSITORY, GITHUB_API_URL,
# GITHUB_TOKEN (pull-requests: write). The token goes to curl on its standard input, never on a
# command line or in the output. Prints the comment's URL.
set -euo pipefail

body_file="${1:?usage: pr-comment.sh BODY_FILE}"
: "${GITHUB_TOKEN:?GITHUB_TOKEN is needed to comment on the pull request}"
: "${GITHUB_REPOSITORY:?}" "${GITHUB_EVENT_PATH:?}"
api="${GITHUB_API_URL:-https://api.github.com}"
marker="$(head -n 2 "$body_file")"

number="$(jq -r '.pull_request.number // .issue.number // empty' "$GITHUB_EVENT_PATH")"
if [ -z "$number" ]; then
  echo "dbops: not a pull request event: no comment posted" >&2
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# github METHOD URL [PAYLOAD_FILE]: the response body on stdout; fails on an HTTP error.
github() {
  local data=()
  if [ $# -ge 3 ]; then data=(--data-binary "@$3"); fi
  printf 'header = "Authorization: Bearer %s"\n' "$GITHUB_TOKEN" |
    curl --silent --show-error --fail-with-body --config - \
      --request "$1" --header "Accept: application/vnd.github+json" \
      --header "X-GitHub-Api-Version: 2022-11-28" --header "Content-Type: application/json" \
      "${data[@]}" "$2"
}

comment_id=""
page=1
while [ -z "$comment_id" ]; do
  github GET "$api/repos/$GITHUB_REPOSITORY/issues/$number/comments?per_page=100&page=$page" \
    > "$work/page.json"
  comment_id="$(jq -r --arg marker "$marker" \
    'map(select(.body | startswith($marker))) | first | .id // empty' "$work/page.json")"
  [ "$(jq length "$work/page.json")" -lt 100 ] && break
  page=$((page + 1))
done

jq --null-input --rawfile body "$body_file" '{body: $body}' > "$work/payload.json"
if [ -n "$comment_id" ]; then
  github PATCH "$api/repos/$GITHUB_REPOSITORY/issues/comments/$comment_id" "$work/payload.json" \
    > "$work/comment.json"
else
  github POST "$api/repos/$GITHUB_REPOSITORY/issues/$number/comments" "$work/payload.json" \
    > "$work/comment.json"
fi
jq -r '.html_url // empty' "$work/comment.json"
