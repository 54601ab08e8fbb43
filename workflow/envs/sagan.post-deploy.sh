#!/usr/bin/env bash
# Snakemake runs this inside the new conda environment (--use-conda): install the `sagan` package
# from the repository that holds this workflow, without touching the pinned dependencies.
set -euo pipefail
pip install --no-deps -e "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
