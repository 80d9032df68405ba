"The causal-LM baseline on the tiny backbone: format, first-token supervision, prompt = training prefix, overfitting."
import math

import pytest
import torch
from transformers import BertLMHeadModel, GPT2Config, GPT2LMHeadModel

from chatbert.backbone import BackboneUnavailable, load_backbone
from chatbert.models.baseline import BaselineChat, CausalBertLM
from chatbert.config import load_config
from chatbert.data import load_examples
from chatbert.models.ed import EDChat
from chatbert.training.speed import restrict_output

from seq2seq_helpers import SMALL_ED, assert_overfits, fit, pick_eight


@pytest.fixture(scope="module")
def cfg():
    return load_config("smoke", {"ed": SMALL_ED})


@pytest.fixture(scope="module")
def examples(tok, cfg):
    return load_examples(cfg.data, tok)


@pytest.fixture(scope="module")
def eight(examples):
    return pick_eight(examples)


@pytest.fixture(scope="module")
def trained(tok, cfg, eight):
    chat = BaselineChat.from_config(cfg, tok)
    return chat, fit(chat, eight, 60)


def test_rows_supervise_the_first_reply_token_and_the_end(tok, cfg, examples):
    chat = BaselineChat.from_config(cfg, tok)
    feats = [examples["train"][i] for i in range(4)]
    b = chat.collator(feats)
    assert b["input_ids"].shape[1] == max(len(f["context_ids"]) + len(f["reply_ids"]) + 3 for f in feats)  # dynamic padding
    for f, ids, mask, lab in zip(feats, b["input_ids"], b["attention_mask"], b["labels"]):
        p, m = len(f["context_ids"]) + 2, len(f["reply_ids"])
        assert ids[:p + m + 1].tolist() == [tok.cls_token_id, *f["context_ids"], tok.sep_token_id, *f["reply_ids"], tok.sep_token_id]
        assert (lab[:p] == -100).all() and (lab[p + m + 1:] == -100).all() and mask.sum() == p + m + 1
        assert lab[p] == f["reply_ids"][0] and lab[p:p + m + 1].tolist() == f["reply_ids"] + [tok.sep_token_id]
    # after the causal shift, the [SEP] that closes the prompt is what predicts the first reply token
    shifted = b["labels"][:, 1:]
    first = [len(f["context_ids"]) + 1 for f in feats]                  # position of the prompt's [SEP]
    assert [shifted[i, j].item() for i, j in enumerate(first)] == [f["reply_ids"][0] for f in feats]
    # training logits only where there are labels: one row per reply token and end token, none over the prompt
    out = chat.model(**b)
    assert out.logits.shape == (sum(len(f["reply_ids"]) + 1 for f in feats), len(tok))
    full = chat.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits     # (B, L, V): every position
    assert full.shape[:2] == b["input_ids"].shape


def test_inference_prompt_is_the_training_prefix(tok, cfg, examples):
    chat = BaselineChat.from_config(cfg, tok)
    rows = [examples["test"][i] for i in range(5)]
    seen = {}
    generate = chat.model.generate
    def spy(**kw):
        seen.update(kw)
        return generate(**kw)
    chat.model.generate = spy
    chat.generate([r["context"] for r in rows], max_new_tokens=3)
    train = chat.collator(rows)
    for i, r in enumerate(rows):
        prompt = seen["input_ids"][i][seen["attention_mask"][i].bool()].tolist()      # left padding removed
        prefix = train["input_ids"][i][train["labels"][i] == -100][:len(prompt)].tolist()
        assert prompt == prefix == train["input_ids"][i][:len(prompt)].tolist()
        assert train["labels"][i][len(prompt)] == r["reply_ids"][0]                     # the next token is the reply's first
    assert (seen["attention_mask"][:, -1] == 1).all()                                     # left padding: prompts end together


def test_body_is_initialised_exactly_as_eds_encoder(tok, cfg):
    base = BaselineChat.from_config(cfg, tok)
    ed = EDChat.from_config(cfg, tok)
    enc = ed.model.encoder.state_dict()
    body = base.model.bert.state_dict()
    assert set(body) == {k for k in enc if not k.startswith("pooler.")}
    assert all(torch.equal(v, enc[k]) for k, v in body.items())
    assert base.model.config.is_decoder and isinstance(base.model, BertLMHeadModel)
    assert base.model.cls.predictions.decoder.weight.data_ptr() == base.model.bert.embeddings.word_embeddings.weight.data_ptr()


def test_overfits_eight_examples(tok, trained, eight):
    chat, losses = trained
    assert_overfits(tok, chat, losses, eight)


def test_batched_greedy_equals_one_by_one(trained, examples):
    chat, _ = trained
    histories = [examples["test"][i]["context"] for i in range(6)] + [["hi"], ["what's up?", "not much", "cool 😀"]]
    batched = chat.generate(histories, max_new_tokens=12)
    assert len({len(chat.contexts([h])[0]) for h in histories}) > 3        # really different prompt lengths (padding)
    assert batched == [chat.generate([h], max_new_tokens=12)[0] for h in histories]
    assert chat.generate(histories, num_beams=3, max_new_tokens=12) == [chat.generate([h], num_beams=3, max_new_tokens=12)[0] for h in histories]


def test_decoding_options(tok, trained, eight):
    chat, _ = trained
    hs = [e["context"] for e in eight[:4]]
    sample = dict(do_sample=True, temperature=1.5, top_k=0, top_p=0.95, max_new_tokens=8)
    assert chat.generate(hs, seed=5, **sample) == chat.generate(hs, seed=5, **sample)
    assert len({tuple(chat.generate(hs, seed=s, **sample)) for s in range(4)}) > 1
    assert all(len(tok(o, add_special_tokens=False)["input_ids"]) >= 7 for o in chat.generate(hs, min_new_tokens=8, max_new_tokens=8))
    with pytest.raises(ValueError, match="positions"): chat.generate(hs, max_new_tokens=1000)   # tiny: 256 positions


def test_trainer_wiring(tok, cfg, eight, tmp_path):
    from datasets import Dataset
    chat = BaselineChat.from_config(cfg, tok)
    ds = Dataset.from_list(eight)
    trainer = chat.fit(ds, ds, tmp_path / "run", max_steps=4, logging_steps=1, eval_steps=2, save_steps=2,
                         warmup_steps=0, disable_tqdm=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    assert trainer.state.global_step == 4 and len(losses) == 4 and losses[-1] < losses[0] and evals[-1] < evals[0]
    assert {g["initial_lr"] for g in trainer.optimizer.param_groups} == {cfg.train.lr}


def test_likelihood_matches_the_loss_and_eds_units(tok, cfg, trained, eight):
    chat, _ = trained
    hs, replies = [e["context"] for e in eight], [e["reply"] for e in eight]
    lik = chat.likelihood(hs, replies)
    chat.model.eval()
    with torch.no_grad(): loss = chat.model(**chat.collator(eight)).loss.item()
    assert math.isclose(lik["nll"] / lik["tokens"], loss, abs_tol=1e-4)
    ed = EDChat.from_config(cfg, tok).likelihood(hs, replies)
    assert (ed["tokens"], ed["words"], ed["example_words"]) == (lik["tokens"], lik["words"], lik["example_words"])
    assert lik["ppl_token"] < 2 < ed["ppl_token"]      # the trained baseline knows these replies; a fresh ED does not


def test_save_load_offline_gives_the_same_logits(trained, eight, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    chat, _ = trained
    chat.save(tmp_path / "base")
    again = BaselineChat.load(tmp_path / "base")
    assert type(again.model) is CausalBertLM and again.cfg == chat.cfg and again.cfg.model.variant == "baseline"
    b = chat.collator(eight)
    chat.model.eval()
    prompt_only = {k: v for k, v in b.items() if k != "labels"}   # with labels the training model keeps reply logits only
    with torch.no_grad():
        assert torch.equal(chat.model(**prompt_only).logits, again.model(**prompt_only).logits)
        assert torch.allclose(chat.model(**b).loss, again.model(**b).loss, atol=1e-6)
    hs = [e["context"] for e in eight]
    assert again.generate(hs) == chat.generate(hs)
    with pytest.raises(ValueError, match="'baseline' model"): EDChat.load(tmp_path / "base")


def test_any_causal_lm_from_a_folder(tok, cfg, eight, tmp_path):
    "baseline.hub_model takes any causal LM (here a tiny GPT-2 in a local folder, the offline stand-in for `gpt2`)."
    folder = tmp_path / "gpt2-tiny"
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=1, n_head=2)).save_pretrained(folder)
    tok.save_pretrained(folder)
    chat = BaselineChat.from_config(load_config("smoke", {"baseline": {"hub_model": str(folder)}}))
    assert isinstance(chat.model, GPT2LMHeadModel) and chat.cfg.baseline.hub_model == str(folder)
    losses = fit(chat, eight, 3)
    assert all(math.isfinite(x) for x in losses)
    hs = [e["context"] for e in eight[:3]]
    out = chat.generate(hs, max_new_tokens=5)
    assert len(out) == 3 and out == [chat.generate([h], max_new_tokens=5)[0] for h in hs]
    chat.save(tmp_path / "saved")
    assert BaselineChat.load(tmp_path / "saved").generate(hs, max_new_tokens=5) == out


def test_unreachable_hub_model_fails_fast_with_the_offline_choice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneUnavailable, match="hub_model to null"):
        BaselineChat.from_config(load_config("smoke", {"baseline": {"hub_model": "surely-not-cached/causal-lm"}}))


def test_a_loaded_cut_model_keeps_scoring_ids_outside_its_layer_as_unk(tok, trained, eight, tmp_path):
    "A saved baseline comes back as the class it was trained as: with a cut output layer, its loss stays finite and equal."
    chat, _ = trained
    chat.save(tmp_path / "full")
    c = BaselineChat.load(tmp_path / "full")
    b = c.collator(eight)
    said = sorted(set(b["labels"][b["labels"] != -100].tolist()))
    restrict_output(c.model, said[: len(said) // 2] + [tok.unk_token_id, tok.sep_token_id], tok.unk_token_id)  # half the labels outside
    c.save(tmp_path / "cut")
    again = BaselineChat.load(tmp_path / "cut")
    c.model.eval(); again.model.eval()
    with torch.no_grad(): before, after = c.model(**b).loss, again.model(**b).loss
    assert torch.isfinite(after) and torch.allclose(before, after, atol=1e-6)
