import os

import pytest

# Tests run offline whatever the machine: nothing may reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tok():
    from chatbert.backbone import load_tokenizer
    return load_tokenizer("minilm")


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    "A throwaway project root (settings.ini + configs/) that project_root() resolves to."
    (tmp_path / "settings.ini").write_text("[DEFAULT]\n")
    (tmp_path / "configs").mkdir()
    monkeypatch.setenv("CHATBERT_ROOT", str(tmp_path))
    return tmp_path
