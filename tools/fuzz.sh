#!/usr/bin/env bash
# Runs the fuzz targets for as long as asked, one after the other, and grows their corpora:
#   tools/fuzz.sh BUILD SECONDS [TARGET...]     (make fuzz FUZZ_SECONDS=600 FUZZ_TARGET=rpc)
# Each target fuzzes for SECONDS from its working corpus in BUILD/fuzz/corpus/NAME plus the
# repository's (runtime/test/fuzz/corpus/NAME); then the inputs that reach code the
# repository's corpus does not are merged into it (FUZZ_MERGE=0: not). A crash leaves its
# input in BUILD/fuzz/artifacts/ and makes the run fail. docs/fuzzing.md has the rest.
set -uo pipefail

build=$1 seconds=$2
shift 2
src=$(cd "$(dirname "$0")/.." && pwd)
work=$build/fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for exe in "$work"/fuzz_*; do targets+=("${exe##*/fuzz_}"); done
fi

failed=0
summary=()
for t in "${targets[@]}"; do
	exe=$work/fuzz_$t
	if [ ! -x "$exe" ]; then
		echo "moonlog fuzz: no target '$t' in $work (targets: $(ls "$work" | sed -n 's/^fuzz_//p' | tr '\n' ' '))" >&2
		exit 2
	fi
	repo=$src/runtime/test/fuzz/corpus/$t
	mkdir -p "$work/corpus/$t" "$work/artifacts" "$repo"
	read -r -a flags < "$work/$t.flags" || true
	log=$work/$t.log
	echo "moonlog fuzz: $t for $seconds s (log: $log)"
	"$exe" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/$t-" "${flags[@]}" "$work/corpus/$t" "$repo" > "$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	result=ok
	if [ $rc -ne 0 ]; then
		result="FAILED (exit $rc): $(grep -a -m1 -E 'ERROR|==fuzz==|runtime error' "$log" | cut -c1-120)"
		failed=1
	fi
	added=0
	if [ $rc -eq 0 ] && [ "${FUZZ_MERGE:-1}" = 1 ]; then
		before=$(ls "$repo" | wc -l)
		# By edges reached, not by how often: counts would keep hundreds of files more.
		"$exe" -merge=1 -use_counters=0 "${flags[@]}" "$repo" "$work/corpus/$t" \
			> "$work/$t.merge.log" 2>&1 ||
			echo "moonlog fuzz: merging $t failed, see $work/$t.merge.log" >&2
		added=$(( $(ls "$repo" | wc -l) - before ))
	fi
	summary+=("$(printf '%-8s %12s executions  %8s/s  %4s new in the corpus  %s' \
		"$t" "${runs:-?}" "${rate:-?}" "$added" "$result")")
done

echo
engine=libFuzzer
grep -q "moonlog's fuzz driver" "$work/${targets[0]}.log" && engine="moonlog's driver (gcc)"
echo "moonlog fuzz: $seconds s per target, $engine, in $build"
printf '%s\n' "${summary[@]}"
exit $failed
