# bench/lib.sh — shared set-up for the benchmark scripts (sourced, not run).
#
# bench_db_create NAME: a scratch database on the private MariaDB (started if needed), migrated,
# exported as SWITCHBOARD_DB; dropped again by bench_cleanup, which the caller's EXIT trap runs.
# bench_free_port: prints a loopback port nothing answers on.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_db=
bench_base=

bench_sql() {
	local creds=${bench_base#mariadb://} hostport=${bench_base#*@}
	creds=${creds%%@*}
	hostport=${hostport%%/*}
	mariadb --no-defaults -h "${hostport%:*}" -P "${hostport#*:}" -u "${creds%%:*}" \
		-p"${creds#*:}" -e "$1"
}

bench_db_create() {
	bench_base=$("$BENCH_ROOT/scripts/localdb" start | tail -n 1 | cut -d= -f2-)
	bench_db="switchboard_bench_$1_$$"
	bench_sql "CREATE DATABASE $bench_db CHARACTER SET utf8mb4"
	export SWITCHBOARD_DB="${bench_base%/*}/$bench_db"
	if [[ -n ${BENCH_SOCKET:-} ]]; then
		local creds=${bench_base#mariadb://}
		creds=${creds%%@*}
		export SWITCHBOARD_DB="mariadb://$creds@localhost/$bench_db?socket=$BENCH_ROOT/var/mariadb/mariadb.sock"
	fi
	export SWITCHBOARD_SCHEMA_DIR=$BENCH_ROOT/schema
	"$BENCH_ROOT/build/switchboard" migrate >/dev/null
}

bench_cleanup() {
	if [[ -n $bench_db ]]; then
		bench_sql "DROP DATABASE IF EXISTS $bench_db" || true
		bench_db=
	fi
}

bench_free_port() {
	local port
	while :; do
		port=$((20000 + RANDOM % 10000))
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
	done
	echo "$port"
}
