# quiet.sh — sourced by the benchmark scripts: wait_quiet waits (up to QUIET_MAX seconds,
# default 180) until the machine's CPUs are less than QUIET_PCT percent busy (default 25) over
# one second, so a run does not start while something else (a build, a test suite) competes
# for the cores. It prints the busy percentage it started at.
cpu_busy_pct() {
	local a b
	read -r -a a < <(grep '^cpu ' /proc/stat)
	sleep 1
	read -r -a b < <(grep '^cpu ' /proc/stat)
	local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
	local total=0 i
	for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
	[ "$total" -gt 0 ] || { echo 0; return; }
	echo $((100 * (total - idle) / total))
}

wait_quiet() {
	local max=${QUIET_MAX:-180} pct=${QUIET_PCT:-25} waited=0 busy
	while :; do
		busy=$(cpu_busy_pct)
		if [ "$busy" -lt "$pct" ] || [ "$waited" -ge "$max" ]; then
			echo "$busy"
			return
		fi
		waited=$((waited + 1))
	done
}
