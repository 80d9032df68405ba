"ChatBERT-ED on the tiny backbone: teacher forcing, overfitting, freezing, learning rates, decoding, save/load, likelihood."
import math

import pytest
import torch

from chatbert.models.chat import reply_words, until_end
from chatbert.config import load_config
from chatbert.data import load_examples
from chatbert.models.ed import EDChat, EDModel

from seq2seq_helpers import SMALL_ED, assert_overfits, fit, pick_eight


def small_cfg(**ed):
    return load_config("smoke", {"ed": {**SMALL_ED, **ed}})


@pytest.fixture(scope="module")
def examples(tok):
    return load_examples(small_cfg().data, tok)


@pytest.fixture(scope="module")
def eight(examples):
    return pick_eight(examples)


@pytest.fixture(scope="module")
def trained(tok, eight):
    "An ED model overfitted on `eight` (shared by the tests that need a model that says something)."
    chat = EDChat.from_config(small_cfg(), tok)
    losses = fit(chat, eight, 90)
    return chat, losses


def test_collator_supervises_the_first_reply_token(tok, examples):
    chat = EDChat.from_config(small_cfg(), tok)
    feats = [examples["train"][i] for i in range(4)]
    b = chat.collator(feats)
    longest_ctx, longest_reply = max(len(f["context_ids"]) for f in feats), max(len(f["reply_ids"]) for f in feats)
    assert b["input_ids"].shape == (4, longest_ctx + 2) and b["labels"].shape == (4, longest_reply + 1)  # dynamic padding
    for f, ids, mask, lab in zip(feats, b["input_ids"], b["attention_mask"], b["labels"]):
        n, m = len(f["context_ids"]) + 2, len(f["reply_ids"])
        assert ids[:n].tolist() == [tok.cls_token_id, *f["context_ids"], tok.sep_token_id] and mask.sum() == n
        assert lab[0] == f["reply_ids"][0] and lab[:m + 1].tolist() == f["reply_ids"] + [tok.sep_token_id]
        assert (lab[m + 1:] == -100).all() and (lab[:m + 1] != -100).all()   # -100 on padding only
    # the decoder's input at step 0 is [CLS], and its target there is the first reply token
    dec_in = chat.model.prepare_decoder_input_ids_from_labels(b["labels"])
    assert (dec_in[:, 0] == tok.cls_token_id).all() and torch.equal(dec_in[:, 1:2], b["labels"][:, :1])


def test_decoder_is_sized_by_the_config(tok):
    chat = EDChat.from_config(small_cfg(decoder_layers=3, decoder_hidden=96, decoder_heads=4, decoder_intermediate=192), tok)
    c = chat.model.decoder.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (3, 96, 4, 192)
    assert c.is_decoder and c.add_cross_attention and len(chat.model.decoder.bert.encoder.layer) == 3
    assert chat.model.enc_to_dec_proj.weight.shape == (96, 64)   # tiny encoder width 64 -> decoder width 96


def test_loss_is_normalised_by_the_trainers_token_count(tok, eight):
    chat = EDChat.from_config(small_cfg(), tok)
    chat.model.eval()   # no dropout: the two calls see the same network
    b = chat.collator(eight[:3])
    mean = chat.model(**b).loss
    n = int(b["labels"].ne(-100).sum())
    summed = chat.model(**b, num_items_in_batch=torch.tensor(4 * n)).loss   # as if 4 micro-batches of this size
    assert torch.allclose(summed * 4, mean) and abs(mean.item() - math.log(len(tok))) < 1.0


def test_overfits_eight_examples(tok, trained, eight):
    chat, losses = trained
    assert_overfits(tok, chat, losses, eight)


def test_batched_greedy_equals_one_by_one(trained, examples):
    chat, _ = trained
    histories = [examples["test"][i]["context"] for i in range(6)] + [["hi"], ["what's up?", "not much", "cool 😀"]]
    batched = chat.generate(histories, max_new_tokens=12)
    assert batched == [chat.generate([h], max_new_tokens=12)[0] for h in histories]
    assert chat.generate(histories, max_new_tokens=12, batch_size=3) == batched
    assert chat.generate(histories, num_beams=3, max_new_tokens=12) == [chat.generate([h], num_beams=3, max_new_tokens=12)[0] for h in histories]


def test_decoding_options(tok, trained, eight):
    chat, _ = trained
    hs = [e["context"] for e in eight[:4]]
    sample = dict(do_sample=True, temperature=1.5, top_k=0, top_p=0.95, max_new_tokens=8)
    assert chat.generate(hs, seed=3, **sample) == chat.generate(hs, seed=3, **sample)   # seeded
    assert len({tuple(chat.generate(hs, seed=s, **sample)) for s in range(4)}) > 1      # and really sampling
    assert all(len(tok(o, add_special_tokens=False)["input_ids"]) <= 2 for o in chat.generate(hs, max_new_tokens=2))
    long = chat.generate(hs, min_new_tokens=8, max_new_tokens=8)
    assert all(len(tok(o, add_special_tokens=False)["input_ids"]) >= 7 for o in long)   # no [SEP] before 8 tokens
    with pytest.raises(TypeError, match="beams"): chat.generate(hs, beams=2)
    with pytest.raises(ValueError, match="empty"): chat.generate([["hello", "   "]])


def run_trainer(chat, rows, tmp_path, **over):
    "A few steps of the project's Trainer (`train.train_model`) on `rows`, which also serve as validation."
    from datasets import Dataset
    ds = Dataset.from_list(rows)
    args = dict(max_steps=3, logging_steps=1, eval_steps=100, save_steps=100, warmup_steps=0, disable_tqdm=True) | over
    return chat.fit(ds, ds, tmp_path / "run", **args)


def test_frozen_encoder_stays_bit_identical_under_the_trainer(tok, eight, tmp_path):
    chat = EDChat.from_config(small_cfg(freeze_encoder=True), tok)
    enc0 = {k: v.clone() for k, v in chat.model.encoder.state_dict().items()}
    dec0 = {k: v.clone() for k, v in chat.model.decoder.state_dict().items()}
    trainer = run_trainer(chat, eight, tmp_path)
    assert trainer.state.global_step == 3
    assert all(torch.equal(v, enc0[k]) for k, v in chat.model.encoder.state_dict().items())
    assert sum(not torch.equal(v, dec0[k]) for k, v in chat.model.decoder.state_dict().items()) > 10
    in_opt = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in chat.model.encoder.parameters()}


def test_encoder_learning_rate_reaches_the_optimizer(tok, eight, tmp_path):
    chat = EDChat.from_config(small_cfg(encoder_lr=1e-5), tok)
    trainer = run_trainer(chat, eight, tmp_path, max_steps=2)
    groups = trainer.optimizer.param_groups
    assert {g["initial_lr"] for g in groups} == {1e-5, chat.cfg.train.lr}
    enc = {id(p) for p in chat.model.encoder.parameters() if p.requires_grad}
    for g in groups:
        assert all((id(p) in enc) == (g["initial_lr"] == 1e-5) for p in g["params"])
    assert sum(len(g["params"]) for g in groups if g["initial_lr"] == 1e-5) == len(enc) > 0
    assert chat.model.encoder.pooler.dense.weight.requires_grad is False   # never used: not trained


def test_trainer_resumes_from_its_last_checkpoint(tok, eight, tmp_path):
    run_trainer(EDChat.from_config(small_cfg(), tok), eight, tmp_path, max_steps=2, eval_steps=2, save_steps=2)
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    trainer = run_trainer(EDChat.from_config(small_cfg(), tok), eight, tmp_path, max_steps=4, eval_steps=2, save_steps=2)
    steps = [h["step"] for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == 4 and steps == [1, 2, 3, 4] and (tmp_path / "run" / "checkpoint-4").is_dir()


def test_save_load_offline_gives_the_same_logits(trained, eight, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    chat, _ = trained
    chat.save(tmp_path / "ed")
    again = EDChat.load(tmp_path / "ed")
    assert type(again.model) is EDModel and again.cfg == chat.cfg and len(again.tokenizer) == len(chat.tokenizer)
    b = chat.collator(eight)
    chat.model.eval(); again.model.eval()
    with torch.no_grad(): assert torch.equal(chat.model(**b).logits, again.model(**b).logits)
    hs = [e["context"] for e in eight]
    assert again.generate(hs) == chat.generate(hs)


def test_load_errors_are_clear(trained, tmp_path):
    chat, _ = trained
    with pytest.raises(FileNotFoundError, match="config.yaml"): EDChat.load(tmp_path / "nothing")
    chat.save(tmp_path / "ed")
    from chatbert.models.baseline import BaselineChat
    with pytest.raises(ValueError, match="'ed' model"): BaselineChat.load(tmp_path / "ed")
    (tmp_path / "ed" / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(OSError, match="cannot be read"): EDChat.load(tmp_path / "ed")


def test_likelihood_is_the_teacher_forced_loss(tok, trained, eight):
    from datasets import Dataset
    chat, _ = trained
    ds = Dataset.from_list(eight)
    lik = chat.likelihood(ds["context"], ds["reply"])          # dataset columns work as lists do
    chat.model.eval()
    with torch.no_grad(): loss = chat.model(**chat.collator(eight)).loss.item()
    assert lik["tokens"] == sum(len(e["reply_ids"]) + 1 for e in eight)      # the end token counts
    assert math.isclose(lik["nll"] / lik["tokens"], loss, abs_tol=1e-4)   # float32 cross-entropy: ~1e-5 per token
    assert lik["words"] == sum(len(reply_words(e["reply"])) for e in eight)
    assert math.isclose(lik["ppl_word"], math.exp(lik["nll"] / lik["words"])) and lik["ppl_token"] < 3


def test_likelihood_of_a_cut_reply_counts_the_words_it_scores(tok):
    chat = EDChat.from_config(load_config("smoke", {"ed": SMALL_ED, "data": {"max_reply_len": 3}}), tok)
    lik = chat.likelihood([["hi there"]], ["one two three four five"])
    assert lik["tokens"] == 4 and lik["words"] == 3


def test_generation_uses_the_kv_cache_and_it_changes_nothing(trained, eight):
    chat, _ = trained
    assert chat.model.generation_config.use_cache
    batch = chat.collator.encoder_inputs(chat.contexts([e["context"] for e in eight]))
    chat.model.eval()
    cached = chat.model.generate(**batch, max_new_tokens=10, return_dict_in_generate=True)
    assert cached.past_key_values is not None
    assert torch.equal(cached.sequences, chat.model.generate(**batch, max_new_tokens=10, use_cache=False))
    with pytest.raises(ValueError, match="decoder positions"): chat.generate([["hi"]], max_new_tokens=600)


def test_repetition_controls_take_effect(tok, eight):
    chat = EDChat.from_config(small_cfg(), tok)
    fit(chat, eight, 15)                                   # half-trained: greedy decoding repeats frequent tokens
    hs = [e["context"] for e in eight]
    def repeats(**decoding):
        "Repeated token ids in the replies, as transformers returned them to `chat.generate`."
        out, generate = [], chat.model.generate
        chat.model.generate = lambda **kw: out.append(generate(**kw)) or out[-1]
        try: chat.generate(hs, max_new_tokens=16, min_new_tokens=16, **decoding)   # 16 tokens each, no early end
        finally: del chat.model.generate
        rows = [until_end(r[1:].tolist(), tok.sep_token_id) for r in out[0]]
        return sum(len(r) - len(set(r)) for r in rows)
    plain = repeats()
    assert plain > 0
    assert repeats(no_repeat_ngram_size=1) == 0
    assert repeats(repetition_penalty=50.0) < plain


def test_stop_after_steps_ends_early_on_the_whole_runs_schedule(tok, eight, tmp_path):
    "A learning curve's start: stopped at step 3 of a 10-step run, evaluated and saved there, at the 10-step schedule's rate."
    chat = EDChat.from_config(load_config("smoke", {"ed": SMALL_ED, "train": {"stop_after_steps": 3}}), tok)
    trainer = run_trainer(chat, eight, tmp_path, max_steps=10)
    lrs = {h["step"]: h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h}
    assert trainer.state.global_step == 3 and max(lrs) == 3
    assert lrs[3] == pytest.approx(chat.cfg.train.lr * 8 / 10)   # step 3 trains at (1 - 2/10) of the peak; a 3-step run: 1/3
    assert [h["step"] for h in trainer.state.log_history if "eval_loss" in h] == [3]
    assert (tmp_path / "run" / "checkpoint-3").is_dir()
