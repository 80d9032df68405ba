import time

import pytest
import torch

from chatbert.backbone import OTHER, SELF, BackboneUnavailable, load_backbone, load_tokenizer


def embed(model, tok, texts):
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1)
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)


def test_minilm_loads_offline_with_real_weights(tok):
    model = load_backbone("minilm").eval()
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    e = embed(model, tok, ["a cat sits on the mat", "a kitten is sitting on a rug", "the stock market fell today"])
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3  # trained sentence embeddings, not random ones


def test_minilm_mlm_head_is_tied_to_word_embeddings():
    mlm = load_backbone("minilm", "mlm")
    assert mlm.cls.predictions.decoder.weight.data_ptr() == mlm.bert.embeddings.word_embeddings.weight.data_ptr()


def test_tiny_is_small_and_seeded():
    a, b = load_backbone("tiny", seed=1), load_backbone("tiny", seed=1)
    assert sum(p.numel() for p in a.parameters()) < 3_000_000
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_speaker_marks_are_single_tokens(tok):
    ids = tok(f"{OTHER} hello {SELF} hi", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == [OTHER, "hello", SELF, "hi"]
    assert len(tok) == 30522  # no new embeddings needed


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_unreachable_hub_name_fails_fast_naming_minilm(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    t0 = time.time()
    with pytest.raises(BackboneUnavailable, match="minilm"):
        load_backbone("chatbert-tests/no-such-model")
    with pytest.raises(BackboneUnavailable, match="minilm"):
        load_tokenizer("chatbert-tests/no-such-model")
    assert time.time() - t0 < 10


def test_local_folder_round_trip(tmp_path, tok):
    model = load_backbone("tiny")
    model.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    again = load_backbone(str(tmp_path))
    assert torch.equal(model.embeddings.word_embeddings.weight, again.embeddings.word_embeddings.weight)
    assert load_tokenizer(str(tmp_path))("hello")["input_ids"] == tok("hello")["input_ids"]


@pytest.fixture
def distil_folder(tmp_path, tok):
    "A tiny random DistilBERT saved as a local backbone folder (the real distilbert-base-uncased needs the hub)."
    from transformers import DistilBertConfig, DistilBertForMaskedLM
    torch.manual_seed(0)
    DistilBertForMaskedLM(DistilBertConfig(vocab_size=len(tok), dim=64, n_layers=2, n_heads=2, hidden_dim=128)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return tmp_path


def test_distilbert_folder_loads_as_the_same_function_in_bert_classes(distil_folder, tok):
    from transformers import BertForMaskedLM, BertModel, DistilBertForMaskedLM
    ref = DistilBertForMaskedLM.from_pretrained(distil_folder).eval()
    mlm, enc = load_backbone(str(distil_folder), "mlm").eval(), load_backbone(str(distil_folder)).eval()
    assert isinstance(mlm, BertForMaskedLM) and isinstance(enc, BertModel)
    ids = torch.tensor([tok("hello there, how are you?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(ref(input_ids=ids).logits, mlm(input_ids=ids).logits, atol=1e-5)
        assert torch.allclose(ref.distilbert(ids).last_hidden_state, enc(ids).last_hidden_state, atol=1e-5)


@pytest.mark.parametrize("variant", ["imr", "baseline", "ed"])
def test_every_bert_variant_builds_and_replies_on_a_distilbert_backbone(distil_folder, variant):
    from chatbert.config import load_config
    from chatbert.experiments.experiment import chat_class
    cfg = load_config("smoke", {"model": {"variant": variant, "backbone": str(distil_folder)}})
    chat = chat_class(variant).from_config(cfg)
    assert len(chat.generate([["hi", "hello! how are you?"]], max_new_tokens=4)) == 1
