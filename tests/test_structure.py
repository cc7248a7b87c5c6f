"""The architecture holds: domains independent, parse-time imports light, lint clean."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "sealflow"
HEAVY = ("torch", "transformers", "peft", "vllm", "pandas", "matplotlib")


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return names


def _domain_files(domain: str) -> list[Path]:
    return sorted((PKG / domain).rglob("*.py")) + sorted((PKG / "stages").glob(f"{domain}*.py"))


@pytest.mark.parametrize("domain, other", [("knowledge", "fewshot"), ("fewshot", "knowledge")])
def test_domains_never_import_each_other(domain, other):
    offenders = {str(f.relative_to(ROOT)): sorted(n for n in _imports(f) if n.startswith(f"sealflow.{other}"))
                 for f in _domain_files(domain)}
    assert not {f: n for f, n in offenders.items() if n}, f"{domain} imports {other}"
    assert len(_domain_files(domain)) > 5  # the scan sees the domain's modules


def test_shared_modules_import_no_domain():
    shared = [p for p in PKG.glob("*.py")] + list((PKG / "backends").glob("*.py"))
    bad = {str(p.relative_to(ROOT)): n for p in shared
           for n in _imports(p) if n.startswith(("sealflow.knowledge", "sealflow.fewshot", "sealflow.stages"))}
    assert not bad


def _parse_time_modules() -> list[str]:
    """Every sealflow module the Snakefile and the rules files import while Snakemake parses them."""
    pattern = re.compile(r"^\s*(?:from\s+(sealflow[\w.]*)\s+import\s+([\w, ]+)|import\s+(sealflow[\w.]*))", re.M)
    modules = set()
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        for frm, names, imp in pattern.findall(path.read_text()):
            modules.add(imp or frm)
            modules |= {f"{frm}.{n.strip()}" for n in names.split(",")} if frm else set()
    return sorted(modules)


def test_parse_time_imports_stay_light():
    """Snakemake imports these in every job (twice per SLURM job): no torch or other heavy library."""
    modules = _parse_time_modules()
    assert "sealflow.ids" in modules and "sealflow.config" in modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except ModuleNotFoundError:\n        pass  # an attribute (from x import y), not a module\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_rules_files_hold_rules_and_common_holds_helpers():
    for path in sorted((ROOT / "rules").glob("*.smk")):
        defs = re.findall(r"^def (\w+)", path.read_text(), re.M)
        if path.name == "common.smk":
            assert len(defs) > 10
        else:
            assert not defs, f"{path.name} defines helpers {defs}: they belong in rules/common.smk"


def test_every_script_calls_its_stage_with_keywords_only():
    for path in sorted((ROOT / "scripts").glob("*.py")):
        tree = ast.parse(path.read_text())
        stages = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                  and (n.module or "").startswith("sealflow.stages.") for a in n.names}
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) in stages]
        assert len(calls) == 1, f"{path.name} should call one stage of sealflow.stages"
        positional = [a for a in calls[0].args if not (isinstance(a, ast.Attribute) and a.attr == "config")]
        assert not positional, f"{path.name} passes positional arguments"


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/fewshot.yaml", "config/paper-knowledge.yaml"])
def test_snakemake_lint_is_clean(configfile):
    snakemake = Path(sys.executable).with_name("snakemake")
    out = subprocess.run([str(snakemake), "--lint", "--configfile", configfile], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr, out.stdout[-3000:]
