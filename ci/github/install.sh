#!/usr/bin/env bash
# Install dbops for the action: the action's own checkout (the ref in `uses: OWNER/dbops@REF`),
# or, when DBOPS_REF is set, that ref of DBOPS_REPOSITORY.
set -euo pipefail

if [ -n "${DBOPS_REF:-}" ]; then
  repository="${DBOPS_REPOSITORY:?DBOPS_REPOSITORY names the repository to install dbops from}"
  source="dbops @ git+${GITHUB_SERVER_URL:-https://github.com}/${repository}@${DBOPS_REF}"
else
  source="${DBOPS_SOURCE:?DBOPS_SOURCE is the dbops checkout to install}"
fi
python -m pip install --disable-pip-version-check --quiet "$source"
dbops --version
