#!/usr/bin/env bash
# docker/entrypoint.sh — container start-up for the switchboard image.
#
# Default: apply pending schema migrations, then serve on 0.0.0.0:8080 (SWITCHBOARD_LISTEN
# overrides). Arguments starting with "-" go to `serve` (e.g. `--listen 0.0.0.0:9000`); any other
# arguments run as a command instead (e.g. `docker compose run switchboard switchboard user add ...`).
set -euo pipefail

# The database may still be coming up (or failing over) when the container starts; depends_on
# covers compose, this covers plain `docker run` and orchestrators without health ordering.
MIGRATE_ATTEMPTS=${SWITCHBOARD_MIGRATE_ATTEMPTS:-20}
MIGRATE_DELAY=${SWITCHBOARD_MIGRATE_DELAY:-3}

migrate() {
	local attempt
	for ((attempt = 1; attempt <= MIGRATE_ATTEMPTS; attempt++)); do
		switchboard migrate && return 0
		((attempt < MIGRATE_ATTEMPTS)) || break
		echo "entrypoint: migrate failed (attempt $attempt/$MIGRATE_ATTEMPTS); retrying in ${MIGRATE_DELAY}s" >&2
		sleep "$MIGRATE_DELAY"
	done
	echo "entrypoint: giving up on migrate" >&2
	exit 1
}

main() {
	if [[ $# -gt 0 && $1 != -* ]]; then
		exec "$@"
	fi
	migrate
	export SWITCHBOARD_LISTEN=${SWITCHBOARD_LISTEN:-0.0.0.0:8080}
	exec switchboard serve "$@"
}

main "$@"
