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


def test_stage_modules_load_no_model_code():
    """A grading, filtering or summary job imports its stage module only: torch, transformers and
    peft (about ten seconds a job) are imported inside the stages that load a model."""
    modules = [f"sealflow.stages.{p.stem}" for p in sorted((PKG / "stages").glob("*.py")) if p.stem != "__init__"]
    assert "sealflow.stages.knowledge" in modules and "sealflow.stages.fewshot_eval" in modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'vllm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_rules_files_hold_rules_and_common_holds_helpers():
    for path in sorted((ROOT / "rules").glob("*.smk")):
        defs = re.findall(r"^def (\w+)", path.read_text(), re.M)
        if path.name == "common.smk":
            assert len(defs) > 10
        else:
            assert not defs, f"{path.name} defines helpers {defs}: they belong in rules/common.smk"


def _rules() -> list[tuple[str, str, str]]:
    """(rules file, rule name, rule text) for every rule."""
    out = []
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule )", path.read_text())[1:]:
            out.append((path.name, re.match(r"rule (\w+):", block).group(1), block))
    return out


def _section_names(block: str, section: str) -> set[str]:
    match = re.search(rf"(?ms)^    {section}:\n(.*?)(?=^    \w|\Z)", block)
    return set(re.findall(r"(?m)^        (\w+)=", match.group(1))) if match else set()


def test_every_rule_names_a_stage_that_takes_exactly_its_named_files():
    """A rule's named inputs, outputs and params are its stage's keywords: none missing, none extra."""
    import inspect

    from sealflow.stages import stage_function

    rules = _rules()
    assert len(rules) > 20 and all("scripts/stage.py" in block for _, _, block in rules)
    for filename, name, block in rules:
        stage = re.search(r'stage="([\w.]+)"', block).group(1)
        module = stage.split(".")[0]
        assert filename == f"{module}.smk", f"rule {name} in {filename} runs a stage of {module}"
        params = inspect.signature(stage_function(stage)).parameters
        named = (_section_names(block, "input") | _section_names(block, "output") | _section_names(block, "params"))
        named -= {"stage", "settings"}
        assert ("config" in params) == ("settings=" in block), f"rule {name}: settings declared iff {stage} reads config"
        wildcards = set(re.findall(r"\{\{(\w+)\}\}", block)) | set(re.findall(r"wc\.(\w+)", block))
        assert named <= set(params), f"rule {name}: {sorted(named - set(params))} are not parameters of {stage}"
        required = {p for p, v in params.items() if v.default is inspect.Parameter.empty and p != "config"}
        unpacked = "unpack(" in block  # input functions that return named files (checked by the workflow tests)
        missing = required - named - wildcards
        assert unpacked or not missing, f"rule {name} gives {stage} no {sorted(missing)}"


def test_stage_arguments_pass_files_by_name_and_context_only_where_asked():
    from sealflow.stages import stage_arguments

    def stage(config, *, edits, out, r):
        return None

    kwargs = stage_arguments(stage, {"seed": 0}, {"edits": "e.jsonl", "out": "o.csv"}, {"r": "2", "s": "1"})
    assert kwargs == {"config": {"seed": 0}, "edits": "e.jsonl", "out": "o.csv", "r": 2}  # s is not asked for
    with pytest.raises(TypeError, match="declares no params.settings"):
        stage_arguments(stage, None, {"edits": "e.jsonl", "out": "o.csv"}, {"r": "1"})
    with pytest.raises(TypeError, match="edit"):
        stage(**stage_arguments(stage, {}, {"edit": "e.jsonl", "out": "o.csv"}, {"r": "1"}))


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/fewshot.yaml", "config/paper-knowledge.yaml"])
def test_snakemake_lint_is_clean(configfile):
    snakemake = Path(sys.executable).with_name("snakemake")
    out = subprocess.run([str(snakemake), "--lint", "--configfile", configfile], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr, out.stdout[-3000:]


def test_a_remade_output_loses_its_old_meta_but_a_kept_one_keeps_it(tmp_path):
    from sealflow.stages import drop_stale_meta

    (tmp_path / "gone.csv.meta.json").write_text("{}")
    (tmp_path / "kept.csv").write_text("a\n")
    (tmp_path / "kept.csv.meta.json").write_text("{}")
    removed = drop_stale_meta([str(tmp_path / "gone.csv"), str(tmp_path / "kept.csv")])
    assert removed == [str(tmp_path / "gone.csv.meta.json")] and (tmp_path / "kept.csv.meta.json").is_file()
