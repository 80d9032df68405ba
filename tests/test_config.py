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
