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
