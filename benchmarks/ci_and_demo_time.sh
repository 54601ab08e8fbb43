#!/usr/bin/env bash
# Wall time of CI's pipeline steps and of the demo, each in a fresh clone of this repository's HEAD
# (benchmarks/RESULTS.md, "The CI configuration and the demo, measured on the slower machine").
#   bash benchmarks/ci_and_demo_time.sh [WORKDIR]      (default /tmp/sagan-time; it is replaced)
# The clones import their own sagan/ (PYTHONPATH). The steps are those of .ci/run after the tests;
# the demo runs in a second clone, so that it synthesises its own data. Each step prints
# "TIME <s> s rc=<status>: <command>"; the logs stay in the clones.
set -u
work=${1:-/tmp/sagan-time}
repo=$(cd "$(dirname "$0")/.." && pwd)
export DVC_NO_ANALYTICS=1
timed() {  # timed LOG COMMAND...: run COMMAND with its output in LOG, print its wall time
  local log=$1 s=$SECONDS rc=0
  shift
  "$@" > "$log" 2>&1 || rc=$?
  echo "TIME $((SECONDS - s)) s rc=$rc: $*"
}
rm -rf "$work" && mkdir -p "$work"
git clone -q "$repo" "$work/ci" && git clone -q "$repo" "$work/demo"
cd "$work/ci" && export PYTHONPATH=$PWD
echo "=== CI configuration, $(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
timed ci-snakemake.log snakemake --cores 2 --configfile config/ci.yaml
timed ci-report.log snakemake --report results/ci/report.html --configfile config/ci.yaml
timed ci-check.log sagan check-tables --results results/ci --tables results/ci/tables
timed ci-compare.log sagan compare-paper results/ci/tables/table2.csv --tolerance 5
timed ci-dvc.log dvc repro report@ci
dvc status report@ci
cd "$work/demo" && export PYTHONPATH=$PWD
echo "=== demo, $(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
timed demo-snakemake.log snakemake --cores 2 --configfile config/demo.yaml
echo "=== done, $(date +%T)"
