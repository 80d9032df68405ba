import pytest

from chatbert.config import Config, ConfigError, config_names, load_config


def write(root, name, text):
    (root / "configs" / f"{name}.yaml").write_text(text)


def test_every_shipped_config_resolves():
    names = config_names()
    assert "smoke" in names
    for n in names:
        assert isinstance(load_config(n), Config)


def test_unknown_name_lists_known_configs():
    with pytest.raises(ConfigError) as e:
        load_config("no_such_config")
    assert "Known configs:" in str(e.value) and "smoke" in str(e.value)


def test_unknown_key_is_an_error_with_a_suggestion(fake_root):
    write(fake_root, "typo", "train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="Unknown config key 'train.learning_rate'"):
        load_config("typo")
    write(fake_root, "typo2", "data:\n  context_turn: 3\n")
    with pytest.raises(ConfigError, match="Did you mean 'context_turns'"):
        load_config("typo2")


@pytest.mark.parametrize("text, msg", [
    ("train:\n  batch_size: 8.5\n", "'train.batch_size' must be int"),
    ("train:\n  lr: fast\n", "'train.lr' must be float"),
    ("data:\n  use_persona: 1\n", "'data.use_persona' must be bool"),
    ("model: ed\n", "model: expected a mapping"),
])
def test_wrong_types_are_errors(fake_root, text, msg):
    write(fake_root, "bad", text)
    with pytest.raises(ConfigError, match=msg):
        load_config("bad")


def test_inheritance_merges_deeply_and_overrides_win(fake_root):
    write(fake_root, "parent", "data:\n  source: ccc\n  context_turns: 2\ntrain:\n  lr: 1.0e-3\n")
    write(fake_root, "child", "base: parent\ndata:\n  context_turns: 5\n")
    cfg = load_config("child", ["train.lr=1e-4"])
    assert (cfg.name, cfg.data.source, cfg.data.context_turns, cfg.train.lr) == ("child", "ccc", 5, 1e-4)


def test_inheritance_loop_is_reported(fake_root):
    write(fake_root, "a", "base: b\n")
    write(fake_root, "b", "base: a\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config("a")


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("smoke", ["train.lr"])


def test_several_canvases_per_context_need_a_canvas_blind_context():
    "imr.canvases_per_context > 1 shares one encoding of the context, which only a context blind to the canvas allows."
    from chatbert.config import validate_config
    check = lambda *o: validate_config(load_config("smoke", list(o)))        # what `chatbert train` checks before a run
    assert check("imr.context_sees_canvas=false", "imr.canvases_per_context=4").imr.canvases_per_context == 4
    with pytest.raises(ConfigError, match="canvases_per_context"):
        check("imr.context_sees_canvas=true", "imr.canvases_per_context=2")
    with pytest.raises(ConfigError, match="at least 1"):
        check("imr.context_sees_canvas=false", "imr.canvases_per_context=0")
    assert check("imr.context_sees_canvas=false", "imr.detach_context=true").imr.detach_context
    with pytest.raises(ConfigError, match="detach_context"):       # a context that reads the canvas needs its gradient
        check("imr.context_sees_canvas=true", "imr.detach_context=true")


# --- configs by axis: protocols/, systems/ and suites.yaml, the one registry of run names ---

import ast
import re
from pathlib import Path

from chatbert.config import validate_config
from chatbert.suites import configs_dir, raw_config, registry, run_status

ROOT = Path(__file__).resolve().parents[1]


def test_configs_are_protocols_systems_and_one_suites_file():
    files = sorted(p.relative_to(configs_dir()).as_posix() for p in configs_dir().rglob("*") if p.is_file())
    assert len(files) <= 15, files
    assert all(re.fullmatch(r"(protocols|systems)/\w+\.yaml|suites\.yaml", f) for f in files), files
    assert {p.stem for p in (configs_dir() / "systems").glob("*.yaml")} == {"baseline", "ed", "imr", "ra", "fib"}


@pytest.mark.parametrize("name", ["ed_small", "imr_cpu", "quick_imr", "smoke", "quickstart", "imr_quick_steps4", "fib_cpu"])
def test_names_users_type_still_resolve_and_validate(name):
    cfg = validate_config(load_config(name))
    assert cfg.name == name and cfg.model.variant in name.replace("quickstart", "ed").replace("smoke", "ed")


def test_runs_merge_protocol_then_system_then_their_settings():
    cfg, protocol = load_config("imr_cpu"), raw_config("cpu")
    assert (cfg.model.variant, cfg.data.source, cfg.data.max_reply_len) == ("imr", "dailydialog", protocol["data"]["max_reply_len"])
    assert cfg.train.lr == registry("runs")["imr_cpu"]["set"]["train"]["lr"] != protocol["train"]["lr"]   # the run's own setting wins
    before = load_config("imr_cpu_before")                 # a run on another run: its base's settings, then its own
    assert (before.imr.head_lr, before.train.stop_after_steps, before.train.dropout) == (cfg.imr.head_lr, 640, True)
    assert load_config("dailydialog").data.source == load_config("dd").data.source == "dailydialog"   # the old protocol name
    assert "variant" not in (raw_config("quick").get("model") or {})     # a protocol is no run: not in the runnable list
    assert "quick" not in config_names(runnable=True) and "quick_imr" in config_names(runnable=True)


def test_every_name_in_the_registry_is_a_run():
    runs, names = set(registry("runs")), []
    for section in ("tables", "seeds"):
        names += [e.split(":")[0] for rows in registry(section).values() for e in rows]
    names += [f.split("/")[0] for f in registry("paired")["folders"].values()]
    names += [n for a in registry("ablations").values() for n in (a["base"], *a["runs"])]
    names += [n for r in registry("reproduce").values() for n in r["systems"]]
    names += [n for ns in registry("bench").values() for n in ns]
    f = registry("figures")
    names += [*f["imr_runs"], *f["learning_curve_ablations"], *f["cost_pairs"], *f["imr_recipes"]]
    assert [n for n in names if re.sub(r"_seed\d+$", "", n) not in runs] == []   # a seed's run is its config's + _seedN
    assert {s for r in registry("reproduce").values() for s in r["ablations"]} <= set(registry("ablations"))
    assert run_status("imr_dd") == "not run" and run_status("imr_cpu") is None


def test_suites_runs_are_checked(fake_root):
    (fake_root / "configs" / "protocols").mkdir(); (fake_root / "configs" / "systems").mkdir()
    (fake_root / "configs" / "protocols" / "p.yaml").write_text("data:\n  source: ccc\ntrain:\n  lr: 0.5\n")
    (fake_root / "configs" / "systems" / "imr.yaml").write_text("model:\n  variant: imr\n")
    (fake_root / "configs" / "suites.yaml").write_text(
        "runs:\n  r: {protocol: p, system: imr, set: {train: {lr: 0.25}}}\n  r2: {base: r, description: two}\n"
        "  typo: {protocol: p, system: imr, sett: {}}\n  nosys: {protocol: p, system: gpt}\n  l1: {base: l2}\n  l2: {base: l1}\n")
    cfg = load_config("r2")
    assert (cfg.model.variant, cfg.train.lr, cfg.description) == ("imr", 0.25, "two")
    with pytest.raises(ConfigError, match="unknown keys \\['sett'\\]"): load_config("typo")
    with pytest.raises(ConfigError, match="no system 'gpt'"): load_config("nosys")
    with pytest.raises(ConfigError, match="loops: l1 -> l2 -> l1"): load_config("l1")


def config_name_literals(source: str, runs: set[str]) -> list[str]:
    "String constants naming a run (NAME, NAME:tag, NAME/...) outside docstrings, dict keys and the results fixture."
    tree, skip = ast.parse(source), set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body and isinstance(n.body[0], ast.Expr):
            skip.add(id(n.body[0].value))                                  # docstrings may give examples
        if isinstance(n, ast.Dict): skip |= {id(k) for k in n.keys if k is not None}   # a key names a field ("smoke": flag)
        if isinstance(n, ast.FunctionDef) and n.name == "example_results":   # the tiny results tree tests read
            skip |= {id(c) for c in ast.walk(n)}
    return [c.value for c in ast.walk(tree) if isinstance(c, ast.Constant) and isinstance(c.value, str) and id(c) not in skip
            and re.split(r"[:/]", c.value)[0] in runs]


def test_no_config_name_literal_in_the_library_outside_the_suites_reader():
    runs = set(registry("runs"))
    assert config_name_literals('def f():\n    "e.g. imr_cpu"\n    return {"smoke": 1}["imr_cpu:val_choice"]\n', runs) == ["imr_cpu:val_choice"]
    found = {str(p.relative_to(ROOT)): hits for p in sorted((ROOT / "chatbert").rglob("*.py"))
             if p.name not in ("suites.py", "_modidx.py") and (hits := config_name_literals(p.read_text(encoding="utf-8"), runs))}
    assert found == {}
