"""The SEAL authors' data layouts: their prompt wording, their synthetic-data files in (a round's
self-edits, the external held-out method's) and ours out, with nothing passed over silently."""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealflow.config import ConfigError, validate_config
from sealflow.knowledge import prompts
from sealflow.knowledge.data import DataError, load_passages_json
from sealflow.knowledge.heldout.external import import_external
from sealflow.knowledge.sampling import SamplingSettings, import_round_edits
from sealflow.knowledge.seal_layout import read_seal_file, to_seal_layout, write_seal_file
from sealflow.records import Passage, Question, SelfEdit

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "config/schema.yaml")

PASSAGES = [
    Passage("pj-aaaaaaaaaaaa", "Quillon Pass", "Quillon Pass crosses the Ashen Range at 3,100 metres.",
            (Question("Which range does Quillon Pass cross?", "the Ashen Range", ("Ashen Range",)),)),
    Passage("pj-bbbbbbbbbbbb", "Marsh of Iddle", "The Marsh of Iddle is home to the glass heron.",
            (Question("Which bird lives in the Marsh of Iddle?", "the glass heron"),)),
]
# The authors' base prompt, as the issue quotes it from their repository.
AUTHORS = ("Let's read the following passage and produce a list of implications derived directly or indirectly "
           "from the content.\n\nPassage:\n{title}\n{context}\n\nImplications:\n")


def _record(passage: Passage, completions, prompt: str | None = None) -> dict:
    return {"title": passage.title, "context": passage.context,
            "questions": [{"question": q.question, "answer": q.answer} for q in passage.questions],
            "completions": list(completions),
            "prompt": AUTHORS.format(title=passage.title, context=passage.context) if prompt is None else prompt}


def _write(tmp_path: Path, records, name: str = "seal.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _chat_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")))
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    return tok


# ------------------------------------------------------------------ prompt families


def test_seal_implications_is_the_authors_wording_byte_for_byte():
    for passage in PASSAGES:
        assert prompts.self_edit_prompt("seal-implications", passage) == AUTHORS.format(
            title=passage.title, context=passage.context)
    untitled = Passage("x", "", "Body.", ())
    assert prompts.self_edit_prompt("seal-implications", untitled).endswith("Passage:\n\nBody.\n\nImplications:\n")


def test_seal_families_differ_from_ours_and_have_their_cues():
    cues = {"seal-implications": "Implications:\n", "seal-implications-long": "Implications:\n",
            "seal-implications-very-long": "Implications:\n", "seal-rewrite": "Rewritten passages:\n",
            "seal-self-qa": "Question 1: "}
    for family, cue in cues.items():
        text = prompts.self_edit_prompt(family, PASSAGES[0])
        assert text.startswith("Let's read the following passage and ") and text.endswith("\n\n" + cue)
        assert text != prompts.self_edit_prompt(family.removeprefix("seal-"), PASSAGES[0])
    assert "a long list" in prompts.self_edit_prompt("seal-implications-long", PASSAGES[0])
    assert "a very long list" in prompts.self_edit_prompt("seal-implications-very-long", PASSAGES[0])


def test_seal_chat_family_puts_the_task_in_a_system_message():
    text = prompts.self_edit_prompt("seal-chat-implications", PASSAGES[0], tokenizer=_chat_tokenizer())
    assert text == ("<|system|>\nYou are an assistant tasked with analyzing the provided passage and producing a list "
                    "of implications derived directly or indirectly from the content. <|end|>\n"
                    f"<|user|>\n{PASSAGES[0].title}\n{PASSAGES[0].context}<|end|>\n<|assistant|>\n")
    with pytest.raises(ValueError, match="'seal-chat-implications' needs a tokenizer with a chat template"):
        prompts.self_edit_prompt("seal-chat-implications", PASSAGES[0])


def test_every_family_is_recognised_from_its_prompt_and_the_schema_lists_them_all():
    tok = _chat_tokenizer()
    for family in prompts.PROMPT_FAMILIES:
        assert prompts.prompt_family_of(prompts.self_edit_prompt(family, PASSAGES[0], tok), PASSAGES[0], tok) == family
    assert prompts.prompt_family_of("Summarise:\n", PASSAGES[0]) is None
    assert prompts.prompt_family_of(prompts.self_edit_prompt("seal-rewrite", PASSAGES[0]), PASSAGES[1]) is None
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    assert tuple(schema["definitions"]["prompt_family"]["enum"]) == prompts.PROMPT_FAMILIES


def test_each_paper_config_names_its_prompt_family():
    paper = yaml.safe_load((ROOT / "config/paper-knowledge.yaml").read_text())
    assert paper["knowledge"]["self_edits"]["prompt"] == "seal-implications"  # the paper's own wording
    text = (ROOT / "config/paper-knowledge.yaml").read_text()
    assert "prompt family" in text and "seal-implications" in text
    assert "prompt family" in (ROOT / "config/paper-fewshot.yaml").read_text()


# ------------------------------------------------------------------ passages JSON says what it did not read


def test_passages_json_names_the_keys_it_does_not_read(tmp_path, caplog):
    records = [_record(PASSAGES[0], ["a", "b"]), {**_record(PASSAGES[1], ["c"]), "source": "wiki"}]
    records[1]["questions"][0]["id"] = "q1"
    with caplog.at_level(logging.WARNING, "sealflow.knowledge.data"):
        passages = load_passages_json(_write(tmp_path, records))
    assert [p.context for p in passages] == [p.context for p in PASSAGES]
    lines = [r.getMessage() for r in caplog.records]
    assert any("passage keys not read: 'completions' (2), 'prompt' (2), 'source' (1)" in m
               and "knowledge.import_self_edits.path" in m and "knowledge.heldout.external.path" in m for m in lines)
    assert any("question keys not read: 'id' (1)" in m for m in lines)


def test_passages_json_without_extra_keys_warns_nothing(tmp_path, caplog):
    plain = [{k: v for k, v in _record(p, []).items() if k in ("title", "context", "questions")} for p in PASSAGES]
    with caplog.at_level(logging.WARNING, "sealflow.knowledge.data"):
        load_passages_json(_write(tmp_path, plain))
    assert not caplog.records


# ------------------------------------------------------------------ reading their files


@pytest.mark.parametrize("records, fragment", [
    ({"data": []}, "expected a list of records"),
    (["x"], "[0] should be an object, got str"),
    ([{"title": "T", "completions": []}], "[0] has no 'context'"),
    ([{"title": "T", "context": "c"}], "[0] has no 'completions'"),
    ([{"title": "T", "context": "c", "completions": "abc"}], "[0].completions should be a list of strings, got str"),
    ([{"title": "T", "context": "c", "completions": ["a", 3]}], "[0].completions[1] should be a string, got int"),
    ([{"title": 1, "context": "c", "completions": []}], "[0].title should be a string, got int"),
    ([{"title": "T", "context": "c", "completions": [], "prompt": None}], "[0].prompt should be a string"),
    ([{"title": "T", "context": "c", "completions": [], "questions": {}}], "[0].questions should be a list"),
    ([{"title": "T", "context": "c", "completions": ["a"]}, {"title": "T", "context": " c ", "completions": ["b"]}],
     "[1] repeats the passage of [0]"),
])
def test_malformed_seal_files_name_the_record_and_the_problem(tmp_path, records, fragment):
    path = _write(tmp_path, records)
    with pytest.raises(DataError) as info:
        read_seal_file(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_unknown_record_keys_and_exact_repeats_are_said(tmp_path, caplog):
    rec = {**_record(PASSAGES[0], ["a"]), "score": 0.5}
    with caplog.at_level(logging.WARNING, "sealflow.knowledge.seal_layout"):
        records = read_seal_file(_write(tmp_path, [rec, rec]))
    assert len(records) == 1
    lines = [r.getMessage() for r in caplog.records]
    assert any("[1] repeats [0] exactly" in m for m in lines)
    assert any("record keys not read: 'score' (2)" in m for m in lines)


# ------------------------------------------------------------------ import as a round's self-edits


def _settings(k: int, family: str = "seal-implications") -> SamplingSettings:
    return SamplingSettings(prompt=family, k=k)


def test_a_round_imports_the_first_k_completions_with_the_ids_sampling_would_give(tmp_path, caplog):
    path = _write(tmp_path, [_record(PASSAGES[1], ["m0", "m1", "m2"]), _record(PASSAGES[0], ["q0", "q1", "q2"]),
                             _record(Passage("z", "Other", "Not in this shard.", ()), ["z0", "z1"])])
    with caplog.at_level(logging.WARNING, "sealflow.knowledge.seal_layout"):
        edits, report = import_round_edits(read_seal_file(path), PASSAGES, _settings(2), None, 1, 3, 0, str(path))
    assert [(e.id, e.input_id, e.sample, e.completion) for e in edits] == [
        ("r1-s3-p00-k0", PASSAGES[0].id, 0, "q0"), ("r1-s3-p00-k1", PASSAGES[0].id, 1, "q1"),
        ("r1-s3-p01-k0", PASSAGES[1].id, 0, "m0"), ("r1-s3-p01-k1", PASSAGES[1].id, 1, "m1")]
    assert edits[0].prompt == AUTHORS.format(title=PASSAGES[0].title, context=PASSAGES[0].context)
    assert all(e.round == 1 and e.shard == 3 and e.policy == f"file:{path}" for e in edits)
    assert edits[0].sampling["source"] == "file"
    assert (report.matched, report.records_in_file, report.unused_completions, report.prompt_mismatches) == (2, 3, 2, 0)
    assert report.prompt_families == {"seal-implications": 2}
    assert any("2 completion(s) beyond the first k = 2" in r.getMessage() for r in caplog.records)


def test_file_prompts_that_are_not_the_configured_family_are_kept_and_warned_about(tmp_path, caplog):
    path = _write(tmp_path, [_record(p, ["a"]) for p in PASSAGES])
    with caplog.at_level(logging.WARNING, "sealflow.knowledge.seal_layout"):
        edits, report = import_round_edits(read_seal_file(path), PASSAGES, _settings(1, "implications"), None, 1, 0,
                                           0, str(path))
    assert edits[0].prompt.startswith("Let's read")  # what the writer saw: ReST-EM trains on it
    assert report.prompt_mismatches == 2
    assert any("2 of 2 prompts are not the configured family 'implications'" in r.getMessage()
               for r in caplog.records)


def test_records_without_prompt_take_the_configured_family_and_empty_completions_are_counted(tmp_path, caplog):
    path = _write(tmp_path, [_record(p, ["", "x"], prompt="") for p in PASSAGES])  # their "naive" file's shape
    with caplog.at_level(logging.WARNING, "sealflow.knowledge.seal_layout"):
        edits, report = import_round_edits(read_seal_file(path), PASSAGES, _settings(2, "rewrite"), None, 2, 0, 0,
                                           str(path))
    assert edits[0].prompt == prompts.self_edit_prompt("rewrite", PASSAGES[0])
    assert (report.prompt_from_config, report.empty_completions) == (2, 2)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "2 empty completion(s)" in messages and "have no prompt" in messages


def test_a_missing_passage_or_too_few_completions_stop_the_import_naming_the_key(tmp_path):
    path = _write(tmp_path, [_record(PASSAGES[0], ["a", "b"])])
    with pytest.raises(DataError, match=r"knowledge.import_self_edits.path: .* no record for passage pj-bbbbbbbbbbbb "
                                        r"\('Marsh of Iddle'\)"):
        import_round_edits(read_seal_file(path), PASSAGES, _settings(2), None, 1, 0, 0, str(path))
    with pytest.raises(DataError, match=r"\[0\] \('Quillon Pass'\) has 2 completion\(s\), fewer than the k = 3"):
        import_round_edits(read_seal_file(path), PASSAGES[:1], _settings(3), None, 1, 0, 0, str(path))


def test_the_external_method_reads_its_synthetic_data_from_a_file(tmp_path):
    path = _write(tmp_path, [_record(p, [f"{p.title} fact {i}" for i in range(5)]) for p in PASSAGES])
    edits, report = import_external(read_seal_file(path), PASSAGES, _settings(1), "gpt-4.1", 0, str(path))
    assert [(e.id, e.completion) for e in edits] == [
        (f"heldout-external-{PASSAGES[0].id}-k0", "Quillon Pass fact 0"),
        (f"heldout-external-{PASSAGES[1].id}-k0", "Marsh of Iddle fact 0")]
    assert all(e.policy == "external:gpt-4.1" for e in edits)
    assert report.unused_completions == 8 and report.prompt_mismatches == 0  # held-out prompts are not checked


# ------------------------------------------------------------------ export, and back


def _edits(passages, k: int, family: str = "implications") -> list[SelfEdit]:
    return [SelfEdit(id=f"r1-s0-p{i:02d}-k{j}", input_id=p.id, sample=j, prompt=prompts.self_edit_prompt(family, p),
                     completion=f"- {p.title} line {j}\n- more {j}", round=1, shard=0, seed=0)
            for i, p in enumerate(passages) for j in reversed(range(k))]


def test_export_writes_their_layout_and_reads_back_as_passages_and_as_self_edits(tmp_path):
    out = tmp_path / "round1_train.json"
    write_seal_file(out, to_seal_layout(PASSAGES, _edits(PASSAGES, 3)))
    raw = json.loads(out.read_text(encoding="utf-8"))
    assert [list(r) for r in raw] == [["title", "context", "questions", "completions", "prompt"]] * 2
    assert raw[0]["questions"] == [{"question": "Which range does Quillon Pass cross?", "answer": "the Ashen Range",
                                    "alternatives": ["Ashen Range"]}]
    assert raw[1]["questions"] == [{"question": "Which bird lives in the Marsh of Iddle?", "answer": "the glass heron"}]
    assert raw[0]["completions"] == [f"- Quillon Pass line {j}\n- more {j}" for j in range(3)]  # by sample
    back = load_passages_json(out)
    assert [(p.title, p.context, p.questions) for p in back] == [(p.title, p.context, p.questions) for p in PASSAGES]
    edits, report = import_round_edits(read_seal_file(out), PASSAGES, _settings(3, "implications"), None, 1, 0, 0,
                                       str(out))
    assert [e.completion for e in edits] == [e.completion for e in sorted(_edits(PASSAGES, 3), key=lambda e: e.id)]
    assert report.prompt_mismatches == 0 and report.prompt_families == {"implications": 2}


def test_export_refuses_what_their_layout_cannot_hold():
    edits = _edits(PASSAGES, 2)
    edits[0].prompt = "another prompt"
    with pytest.raises(DataError, match="come from 2 different prompts"):
        to_seal_layout(PASSAGES, edits)
    with pytest.raises(DataError, match="has no self-edits to export"):
        to_seal_layout(PASSAGES, _edits(PASSAGES[:1], 2))
    with pytest.raises(DataError, match="not in the passages file: pj-bbbbbbbbbbbb"):
        to_seal_layout(PASSAGES[:1], _edits(PASSAGES, 2))


# ------------------------------------------------------------------ fuzzed user files

# Any code point, lone high surrogates included; low ones are left out because JSON reads an
# escaped high+low pair back as one character (json's behaviour, not ours).
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()).filter(lambda ch: not 0xDC00 <= ord(ch) < 0xE000),
                   max_size=40)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
RECORD = st.fixed_dictionaries(
    {"title": st.text(max_size=12), "context": st.text(max_size=30),
     "completions": st.lists(st.text(max_size=20), max_size=3) | JSON},
    optional={"prompt": st.text(max_size=12) | JSON, "questions": st.lists(JSON, max_size=2) | JSON, "extra": JSON})


@given(st.lists(RECORD | JSON, max_size=4) | JSON)
def test_any_json_as_a_seal_file_gives_records_or_a_data_error(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("seal") / "f.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    try:
        records = read_seal_file(path)
    except DataError as err:
        assert str(path) in str(err)
        return
    assert all(isinstance(c, str) for r in records for c in r.completions)
    assert len({r.key for r in records}) == len(records)


@given(st.lists(RECORD | JSON, max_size=4) | JSON)
def test_any_json_as_a_passages_file_gives_passages_or_a_data_error(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("pj") / "f.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    try:
        passages = load_passages_json(path)
    except DataError as err:
        assert str(path) in str(err)
        return
    assert all(p.questions and p.id.startswith("pj-") for p in passages)


@given(st.integers(min_value=1, max_value=3), st.lists(st.tuples(ANY_TEXT, ANY_TEXT), min_size=1, max_size=3),
       st.data())
def test_any_self_edits_survive_export_and_import(tmp_path_factory, k, contents, data):
    """Completions with any code points (lone surrogates too) come back exactly, per passage and sample."""
    passages = list({(t.strip(), c.strip()): Passage(f"pj-{i}", t.strip(), c.strip(), ())
                     for i, (t, c) in enumerate(contents)}.values())
    edits = [SelfEdit(id=f"r1-s0-p{i:02d}-k{j}", input_id=p.id, sample=j, prompt=data.draw(ANY_TEXT, "prompt"),
                      completion=data.draw(ANY_TEXT, "completion"), round=1, shard=0, seed=0)
             for i, p in enumerate(passages) for j in range(k)]
    for p in passages:  # one prompt per passage, as their layout holds
        own = [e for e in edits if e.input_id == p.id]
        for e in own:
            e.prompt = own[0].prompt
    out = tmp_path_factory.mktemp("export") / "out.json"
    write_seal_file(out, to_seal_layout(passages, edits))
    back, _ = import_round_edits(read_seal_file(out), passages, _settings(k), None, 1, 0, 0, str(out))
    expected = [(e.input_id, e.sample, e.completion, e.prompt or prompts.self_edit_prompt("seal-implications",
                 next(p for p in passages if p.id == e.input_id))) for e in edits]
    assert [(e.input_id, e.sample, e.completion, e.prompt) for e in back] == expected


# ------------------------------------------------------------------ config


def _config(**knowledge) -> dict:
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg = copy.deepcopy(base)
    for dotted, value in knowledge.items():
        node = cfg["knowledge"]
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return cfg


def test_config_accepts_the_new_keys_and_refuses_their_bad_combinations():
    cfg = _config(import_self_edits={"path": "their.json", "rounds": [1, 2]},
                  heldout__external={"path": "gpt4_1_val.json"}, self_edits__prompt="seal-chat-implications")
    validate_config(cfg, SCHEMA)
    assert cfg["knowledge"]["heldout"]["external"]["base_url"] is None
    default = _config()
    validate_config(default, SCHEMA)
    assert default["knowledge"]["import_self_edits"] == {"path": None, "rounds": [1]}
    with pytest.raises(ConfigError, match=r"knowledge.import_self_edits.rounds names round\(s\) \[3\]"):
        validate_config(_config(import_self_edits={"path": "f.json", "rounds": [3]}), SCHEMA)
    with pytest.raises(ConfigError, match="knowledge.heldout.external: set base_url .* or path .* not both"):
        validate_config(_config(heldout__external={"path": "f.json", "base_url": "http://127.0.0.1:1/v1"}), SCHEMA)
    with pytest.raises(ConfigError, match="knowledge.import_self_edits.pth: unknown key"):
        validate_config(_config(import_self_edits={"pth": "f.json"}), SCHEMA)


# ------------------------------------------------------------------ through the stages and the rules


def _full_config(tmp_path: Path, data: Path) -> dict:
    cfg = _config(data={"source": "passages_json", "path": str(data), "n_train": 2, "n_val": 2, "seed": 0},
                  import_self_edits={"path": str(data), "rounds": [1]}, heldout__external={"path": str(data)},
                  self_edits__prompt="seal-implications", self_edits__shard_size=2, self_edits__k=2,
                  restem__keep_top_k=1)
    validate_config(cfg, SCHEMA)
    return cfg


def _authors_file(tmp_path: Path) -> tuple[Path, list[Passage]]:
    extra = [Passage(f"x{i}", f"Isle {i}", f"Isle {i} has {i} lighthouses.",
                     (Question(f"How many lighthouses does Isle {i} have?", str(i)),)) for i in range(2)]
    path = _write(tmp_path, [_record(p, [f"{p.title} implication {j}" for j in range(5)]) for p in PASSAGES + extra],
                  "iter0_train.json")
    return path, PASSAGES + extra


def test_stages_import_a_round_and_the_external_method_and_export_them(tmp_path, tiny_model_dir):
    from sealflow.ids import config_subset
    from sealflow.knowledge.data import write_passages_jsonl
    from sealflow.stages import knowledge, knowledge_heldout

    data, passages = _authors_file(tmp_path)
    cfg = _full_config(tmp_path, data)
    train = tmp_path / "train.jsonl"
    write_passages_jsonl(train, passages[:2])
    out = tmp_path / "round1" / "shard0.jsonl"
    knowledge.generate_self_edits(config_subset(cfg, ["seed", "device", "backend", "knowledge.self_edits"]),
                                  passages=str(train), policy=str(tiny_model_dir), out=str(out), r=1, s=0,
                                  imported=str(data))
    edits = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["id"], e["completion"]) for e in edits] == [
        ("r1-s0-p00-k0", "Quillon Pass implication 0"), ("r1-s0-p00-k1", "Quillon Pass implication 1"),
        ("r1-s0-p01-k0", "Marsh of Iddle implication 0"), ("r1-s0-p01-k1", "Marsh of Iddle implication 1")]
    meta = json.loads((tmp_path / "round1" / "shard0.jsonl.meta.json").read_text())
    assert meta["import_unused_completions"] == 6 and meta["import_prompt_mismatches"] == 0
    assert any("beyond the first k = 2" in w for w in meta["warnings"]) and meta["model"] == f"file:{data}"

    exported = tmp_path / "export" / "round1_train.json"
    knowledge.export_self_edits({}, edits=[str(out)], passages=str(train), out=str(exported))
    assert [r["completions"] for r in json.loads(exported.read_text())] == [
        ["Quillon Pass implication 0", "Quillon Pass implication 1"],
        ["Marsh of Iddle implication 0", "Marsh of Iddle implication 1"]]

    val = tmp_path / "val.jsonl"
    write_passages_jsonl(val, passages[2:])
    held = tmp_path / "heldout" / "external.jsonl"
    cfg["knowledge"]["heldout"]["k"] = 2  # the first k completions of each held-out passage, in the file's order
    knowledge_heldout.external_self_edits(config_subset(cfg, ["seed", "knowledge.self_edits", "knowledge.heldout"]),
                                          passages=str(val), out=str(held), imported=str(data))
    rows = [json.loads(line) for line in held.read_text().splitlines()]
    assert [(r["input_id"], r["completion"]) for r in rows] == [
        ("x0", "Isle 0 implication 0"), ("x0", "Isle 0 implication 1"),
        ("x1", "Isle 1 implication 0"), ("x1", "Isle 1 implication 1")]
    assert json.loads((tmp_path / "heldout" / "external.jsonl.meta.json").read_text())["model"] == (
        f"external:gpt-4.1 (file {data})")


def test_the_rules_give_the_file_to_imported_rounds_and_the_external_method_only(tmp_path):
    from workflow import copy_workflow, run_snakemake

    workdir = copy_workflow(tmp_path / "wf")
    data, _ = _authors_file(tmp_path)
    cfg = _full_config(tmp_path, data)
    cfg["knowledge"]["heldout"]["settings"] = ["single"]
    (workdir / "config" / "seal.yaml").write_text(yaml.safe_dump(cfg))
    kn = f"results/{cfg['run']}/knowledge"
    targets = [f"{kn}/round1/self_edits/shard0.jsonl", f"{kn}/round2/self_edits/shard0.jsonl",
               f"{kn}/heldout/self_edits/external.jsonl", f"{kn}/export/round2_train.json",
               f"{kn}/heldout/export/external_val.json"]
    dry = run_snakemake(workdir, *targets, "--configfile", "config/seal.yaml", "-n")
    text = dry.stdout + dry.stderr
    jobs = [block for block in text.split("\nrule ") if block.startswith(("knowledge_generate_self_edits",
                                                                         "knowledge_heldout_self_edits",
                                                                         "knowledge_heldout_external_self_edits"))]
    by_output = {next(line.split("output: ")[1] for line in b.splitlines() if "output: " in line): b for b in jobs}
    assert str(data) in by_output[f"{kn}/round1/self_edits/shard0.jsonl"]
    assert str(data) not in by_output[f"{kn}/round2/self_edits/shard0.jsonl"]
    assert str(data) in by_output[f"{kn}/heldout/self_edits/external.jsonl"]
    for rule in ("knowledge_export_self_edits", "knowledge_heldout_export"):
        assert f"\nrule {rule}:" in text
