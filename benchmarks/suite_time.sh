#!/usr/bin/env bash
# `make test` of two commits on this machine, back to back: wall time and test counts per suite.
#
#   bash benchmarks/suite_time.sh [--rounds N] OLD_COMMIT NEW_COMMIT
#   e.g. bash benchmarks/suite_time.sh b71ac11 HEAD
#
# Each commit is checked out in its own git worktree in a temporary folder (removed at the end)
# and runs its own Makefile's `make test` (engine suite, then the QGIS suite when QGIS is
# installed), exactly as CI does. Environments: each worktree gets a small venv layered on this
# checkout's .venv (a .pth file adds its site-packages; `pip install --no-deps -e` makes the
# worktree's own jess_geo and console script), and a link to this checkout's .venv-qgis. The
# worktrees sit beside a link to ../shared, so the real-data tests find /work/shared/data as they
# do in the main checkout. With --rounds N the commits alternate (old, new, old, new, ...).
# Run it on a quiet machine: it prints the load average before and after every run.
set -euo pipefail

rounds=1
if [[ "${1:-}" == "--rounds" ]]; then rounds=$2; shift 2; fi
if [[ $# -ne 2 ]]; then
    echo "usage: bash benchmarks/suite_time.sh [--rounds N] OLD_COMMIT NEW_COMMIT" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
[[ -x .venv/bin/python ]] || { echo "suite_time: $repo/.venv is missing: run make install first" >&2; exit 2; }

base=$(mktemp -d -t jess-geo-suite.XXXXXX)
cleanup() {
    for name in old new; do
        [[ -d "$base/$name" ]] && git -C "$repo" worktree remove --force "$base/$name" >/dev/null 2>&1 || true
    done
    rm -rf "$base"
}
trap cleanup EXIT
[[ -d "$repo/../shared" ]] && ln -s "$(cd "$repo/../shared" && pwd)" "$base/shared"
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

prepare() {  # prepare NAME COMMIT: worktree + layered venv
    local name=$1 commit=$2 wt="$base/$1"
    git worktree add --detach --quiet "$wt" "$commit"
    .venv/bin/python -m venv --without-pip "$wt/.venv"
    local wsite
    wsite=$("$wt/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" > "$wsite/_jess_geo_main_env.pth"
    "$wt/.venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$wt" >/dev/null 2>&1
    touch "$wt/.venv/.installed"  # the Makefile's install stamp: nothing to install
    [[ -d .venv-qgis ]] && ln -s "$repo/.venv-qgis" "$wt/.venv-qgis"
    echo "$name = $(git -C "$wt" log -1 --format='%h %s' | cut -c1-100)"
}

run_one() {  # run_one NAME ROUND
    local name=$1 round=$2 wt="$base/$1" log="$base/$1.$2.log" start end
    echo "== $name (round $round): load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    start=$(date +%s.%N)
    set +e
    (cd "$wt" && make --no-print-directory test) > "$log" 2>&1
    local rc=$?
    set -e
    end=$(date +%s.%N)
    echo "   exit $rc, make test wall $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}') s;" \
         "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    # pytest's summary line of each suite (engine first, then QGIS).
    grep -E '^=* ?[0-9]+ (passed|failed).* in [0-9.]+s' "$log" | sed 's/^=* */   /; s/ *=*$//' || true
    grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/   /' | head -20 || true
    cp "$log" "/tmp/suite_time_${name}_round${round}.log"
}

prepare old "$1"
prepare new "$2"
echo "machine: $(nproc) cores, $(uname -sr)"
for ((r = 1; r <= rounds; r++)); do
    run_one old "$r"
    run_one new "$r"
done
echo "full logs: /tmp/suite_time_{old,new}_round*.log"
