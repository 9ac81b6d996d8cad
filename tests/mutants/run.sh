#!/usr/bin/env bash
# Plant each bug of tests/mutants/list, one at a time, in a scratch copy of
# the tree, build, run the tests the list names for it, and report whether
# they caught it (killed) or not (survived), and the kill rate.
#
# usage: tests/mutants/run.sh [-k] [-l LIST] [NAME...]
#   NAME...  only these mutants (default: all)
#   -l LIST  another list file
#   -k       keep the scratch tree (its path is printed)
#
# The scratch tree is a git worktree of the source tree as it is now,
# uncommitted changes to tracked files included (git stash create makes a
# commit of them without touching the tree or the stash list); untracked
# files are not in it. It is configured and built once; each mutant then
# costs an incremental build. The source tree itself is never written to
# but for git's record of the worktree, removed at the end. Exit status:
# 0 if every mutant was killed, 1 if one survived or could not be planted
# or built.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
list=$here/list
keep=0
while getopts kl: opt; do
	case $opt in
	k) keep=1 ;;
	l) list=$(cd "$(dirname "$OPTARG")" && pwd)/$(basename "$OPTARG") ;;
	*) sed -n '2,/^set/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
only=" $* "
jobs=${MUTANT_JOBS:-2}
test_timeout=${MUTANT_TEST_TIMEOUT:-600}

cd "$top" || exit 1
git rev-parse --git-dir >/dev/null 2>&1 || {
	echo "mutants: $top is not a git checkout" >&2
	exit 1
}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/spillway-mutants.XXXXXX")
tree=$scratch/tree
rev=$(git stash create 2>/dev/null)
rev=${rev:-HEAD}

cleanup() {
	if [ "$keep" -eq 1 ]; then
		echo "mutants: scratch tree kept in $tree"
		return
	fi
	git -C "$top" worktree remove --force "$tree" >/dev/null 2>&1
	rm -rf "$scratch"
	git -C "$top" worktree prune >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "mutants: scratch tree $tree at $(git rev-parse --short "$rev")"
git worktree add --detach "$tree" "$rev" >/dev/null 2>&1 || {
	echo "mutants: git worktree add failed" >&2
	exit 1
}
cd "$tree" || exit 1
echo "mutants: configure and build the unmodified tree"
if ! { autoreconf -fi && ./configure && make -j"$jobs" &&
    make -j"$jobs" check TESTS=; } >"$scratch/build.log" 2>&1; then
	tail -30 "$scratch/build.log"
	echo "mutants: the unmodified tree does not build" >&2
	exit 1
fi

# run one test spec ("path[:filter]"); 0 if it passed
run_test() {
	local spec=$1 path filter
	path=${spec%%:*}
	filter=
	[ "$path" != "$spec" ] && filter=${spec#*:}
	case $path in
	*.py)
		env top_srcdir="$tree" SPILLWAY_BIN="$tree/src/spillway" \
		    LOADGEN_BIN="$tree/contrib/loadgen/loadgen" \
		    LEGACY_APP_BIN="$tree/contrib/legacy-app/legacy-app" \
		    PYTHONDONTWRITEBYTECODE=1 \
		    timeout -k 10 "$test_timeout" python3 "$path" \
		    ${filter:+"$filter"}
		;;
	*)
		env top_srcdir="$tree" timeout -k 10 "$test_timeout" "./$path"
		;;
	esac
}

# plant, build, test, restore one mutant; prints its verdict line
mutant() {
	local name=$1 file=$2 script=$3 tests=$4 why=$5 log verdict t0
	local spec failed=""
	log=$scratch/$name.log
	t0=$(date +%s)
	cp "$file" "$scratch/orig"
	if ! sed -i -e "$script" "$file" 2>"$log" || cmp -s "$file" \
	    "$scratch/orig"; then
		verdict="STALE (the sed script no longer changes $file)"
	elif ! make -j"$jobs" all >>"$log" 2>&1 ||
	    ! make -j"$jobs" check TESTS= >>"$log" 2>&1; then
		verdict="UNBUILT (does not compile; see $log)"
	else
		IFS=';' read -r -a specs <<<"$tests"
		for spec in "${specs[@]}"; do
			spec=$(echo "$spec" | sed 's/^ *//; s/ *$//')
			[ -n "$spec" ] || continue
			if ! run_test "$spec" >>"$log" 2>&1; then
				failed="$failed${failed:+, }$spec"
			fi
		done
		if [ -n "$failed" ]; then
			verdict="killed by $failed"
		else
			verdict="SURVIVED"
		fi
	fi
	cp "$scratch/orig" "$file"
	touch "$file"
	printf '%-32s %-8s %4ss  %s\n' "$name" "${verdict%% *}" \
	    "$(($(date +%s) - t0))" "$verdict"
	case $verdict in
	killed*)
		# which checks failed: the first three TAP lines that say so
		grep -a '^not ok' "$log" | head -3 | cut -c1-110 |
		    sed 's/^/    /'
		return 0 ;;
	*) echo "    why: $why"; return 1 ;;
	esac
}

total=0
killed=0
bad=0
name= file= script= tests= why=
flush() {
	if [ -n "$name" ]; then
		case $only in
		"  "|*" $name "*)
			total=$((total + 1))
			if mutant "$name" "$file" "$script" "$tests" "$why" \
			    </dev/null; then
				killed=$((killed + 1))
			else
				bad=$((bad + 1))
			fi
			;;
		esac
	fi
	name= file= script= tests= why=
}
while IFS= read -r line <&3 || [ -n "$line" ]; do
	case $line in
	"#"*) continue ;;
	"") flush ;;
	name:*) name=$(echo "${line#name:}" | sed 's/^ *//') ;;
	file:*) file=$(echo "${line#file:}" | sed 's/^ *//') ;;
	sed:*) script=${line#sed: } ;;
	tests:*) tests=${line#tests: } ;;
	why:*) why=${line#why: } ;;
	*) echo "mutants: $list: cannot read: $line" >&2; exit 1 ;;
	esac
done 3<"$list"
flush

if [ "$total" -eq 0 ]; then
	echo "mutants: none selected"
	exit 1
fi
echo "mutants: $killed of $total killed ($((100 * killed / total))%)"
[ "$bad" -eq 0 ]
