#!/usr/bin/env bash
# The prepared GPU check, one command (see benchmarks/gpu_check.py): needs torch, transformers,
# peft and this project installed; no internet. Prints each shape's benchmark table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" benchmarks/gpu_check.py "$@"
