import json
from pathlib import Path

import pytest
import torch

from chatbert.core import environment_info, project_root, seed_everything, write_json_atomic

REPO = Path(__file__).resolve().parent.parent


def test_project_root_found_from_any_subfolder(monkeypatch):
    monkeypatch.delenv("CHATBERT_ROOT", raising=False)
    assert project_root(REPO / "nbs") == REPO
    assert project_root(REPO / "chatbert") == REPO


def test_project_root_env_override(fake_root):
    assert project_root(REPO / "nbs") == fake_root


def test_seed_reproduces_torch_draws():
    seed_everything(11); a = torch.randn(5)
    seed_everything(11); b = torch.randn(5)
    seed_everything(12); c = torch.randn(5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_atomic_json_keeps_old_file_when_write_fails(tmp_path):
    p = write_json_atomic({"ok": 1}, tmp_path / "m.json")
    with pytest.raises(TypeError):
        write_json_atomic({"bad": object()}, p)
    assert json.loads(p.read_text()) == {"ok": 1}
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.json"]


def test_environment_records_versions_commit_and_device():
    env = environment_info("cpu")
    assert env["packages"]["transformers"] and env["packages"]["torch"]
    assert env["device"] == "cpu" and set(env["git"]) == {"commit", "dirty"}


def test_atomic_writes_give_normal_file_modes(tmp_path):
    "mkstemp makes 0600 files; an atomic write must leave what `open(path, 'w')` would (others may read results)."
    import os
    from chatbert.core import file_mode, write_text_atomic
    old = os.umask(0o022)
    try:
        p = write_text_atomic("x", tmp_path/"a.json")
        assert file_mode() == 0o644 and (p.stat().st_mode & 0o777) == 0o644
    finally: os.umask(old)


def test_git_info_is_dirty_for_code_changes_not_for_results(tmp_path):
    "A run rewrites its own tracked run folder while it goes: that must not mark its provenance dirty; code changes must."
    import subprocess
    from chatbert.core import git_info
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True,
                                    capture_output=True)
    (tmp_path/"results").mkdir(); (tmp_path/"results/metrics.json").write_text("{}"); (tmp_path/"code.py").write_text("x = 1")
    git("init", "-q"); git("add", "."); git("commit", "-qm", "start")
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path/"results/metrics.json").write_text('{"bleu": 1}'); (tmp_path/"results/new.json").write_text("{}")
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path/"code.py").write_text("x = 2")
    assert git_info(tmp_path)["dirty"] is True
