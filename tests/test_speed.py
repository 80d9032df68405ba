"The cost settings of chatbert.training.speed take effect and change nothing they should not: tiny backbone, seconds."
import torch
import torch.nn.functional as F
import pytest

from chatbert.backbone import load_backbone
from chatbert.models.baseline import BaselineChat
from chatbert.models.chat import generate_kwargs
from chatbert.config import load_config
from chatbert.data import load_examples
from chatbert.models.ed import EDChat, warm_decoder
from chatbert.models.imr.chat import IMRChat
from chatbert.training.speed import RestrictedHead, output_ids, output_vocab_size
from chatbert.training.train import apply_train_settings, train_model

from seq2seq_helpers import SMALL_ED, pick_eight


def cfg(variant="imr", **train):
    return load_config("smoke", {"model": {"variant": variant}, "ed": SMALL_ED, "train": train})


@pytest.fixture(scope="module")
def examples(tok):
    return load_examples(cfg().data, tok)


@pytest.fixture(scope="module")
def eight(examples):
    return pick_eight(examples)


def _chat(variant, tok, **train):
    c = cfg(variant, **train)
    cls = {"imr": IMRChat, "ed": EDChat, "baseline": BaselineChat}[variant]
    return cls.from_config(c, tok), c


def _collate(chat, feats):
    return chat.collator()(feats) if isinstance(chat, IMRChat) else chat.collator(feats)


@pytest.mark.parametrize("variant", ["imr", "ed", "baseline"])
def test_cut_output_layer_gives_the_full_layers_loss_when_every_label_is_inside(tok, examples, eight, variant):
    "Same weights: the cut layer's loss equals the full layer's with every id outside the set masked (-inf), and never exceeds the full loss."
    full, c = _chat(variant, tok)
    cut, _ = _chat(variant, tok, output_vocab="data")
    cut.model.load_state_dict(full.model.state_dict())
    apply_train_settings(cut.model, cut.cfg, examples["train"]["reply_ids"], tok)
    batch = _collate(full, eight)
    torch.manual_seed(0)
    full.model.eval(); cut.model.eval()
    with torch.no_grad():
        l_cut = cut.model(**batch).loss
        head = (cut.model.decoder if variant == "ed" else cut.model).cls.predictions
        assert isinstance(head, RestrictedHead) and len(head.keep) < len(tok)
        # the full layer with every id outside the set masked: identical softmax, identical loss
        keep = head.keep
        l_full = full.model(**batch).loss
    assert l_cut.item() < l_full.item()          # a smaller softmax: never more loss (labels are inside the set)
    # the full model's own logits at every position, ids outside the set masked: the cut model's loss, exactly
    with torch.no_grad():
        if variant == "imr":
            h = full.model.hidden(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            sel = batch["labels"] != -100
            logits, labels = full.model.cls(h[sel]), batch["labels"][sel]
        elif variant == "ed":
            labels = batch["labels"]
            logits = full.model(batch["input_ids"], batch["attention_mask"],
                                decoder_input_ids=full.model.prepare_decoder_input_ids_from_labels(labels)).logits
        else:
            logits = full.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
        logits = logits.reshape(-1, logits.shape[-1]); labels = labels.reshape(-1)
        outside = torch.ones(logits.shape[-1], dtype=torch.bool); outside[keep] = False
        nll = F.cross_entropy(logits.masked_fill(outside, float("-inf")), labels, reduction="none", ignore_index=-100)
        if variant == "imr":
            ref = (nll * batch["loss_weights"][batch["labels"] != -100]).sum() + 0.1 * full.model(**batch).length_loss
        else:
            ref = nll.sum() / labels.ne(-100).sum()
    assert torch.allclose(l_cut, ref, atol=1e-5)


@pytest.mark.parametrize("variant", ["imr", "ed", "baseline"])
def test_generation_emits_only_ids_of_the_cut_layer(tok, examples, eight, variant):
    chat, c = _chat(variant, tok, output_vocab="data")
    apply_train_settings(chat.model, c, examples["train"]["reply_ids"], tok)
    allowed = set(output_ids(examples["train"]["reply_ids"], tok))
    hist = [e["context"] for e in eight]
    if variant == "imr": out = chat.decode_ids(chat._contexts(hist), max_new_tokens=8).tokens
    else: out = chat._generate_ids(chat.contexts(hist), generate_kwargs(chat.cfg.decode, max_new_tokens=8)[0])
    ids = {i for r in out for i in r}
    assert ids and ids <= allowed
    assert output_vocab_size(chat.model) == len(allowed) < tok.vocab_size   # what metrics.json records


def test_warm_decoder_holds_the_backbones_layers(tok):
    enc = load_backbone("tiny", "encoder", tok, seed=0)
    dec = warm_decoder(enc, 1)
    a, b = enc.encoder.layer[0].attention.self.query.weight, dec.bert.encoder.layer[0].attention.self.query.weight
    assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()      # a copy, not shared
    assert torch.equal(enc.embeddings.word_embeddings.weight, dec.bert.embeddings.word_embeddings.weight)
    assert len(dec.bert.encoder.layer) == 1 and dec.config.is_decoder and dec.config.add_cross_attention
    assert dec.cls.predictions.decoder.weight.data_ptr() == dec.bert.embeddings.word_embeddings.weight.data_ptr()   # tied
    chat = EDChat.from_config(load_config("smoke", {"model": {"variant": "ed"}, "ed": {"decoder_init": "backbone", "decoder_layers": 2}}), tok)
    assert torch.equal(chat.model.encoder.encoder.layer[1].output.dense.weight, chat.model.decoder.bert.encoder.layer[1].output.dense.weight)


def test_dropout_off_and_frozen_embeddings_take_effect(tok, examples, eight):
    chat, c = _chat("imr", tok, dropout=False, freeze_embeddings=True)
    done = apply_train_settings(chat.model, c, examples["train"]["reply_ids"], tok)
    assert done["dropout_modules_off"] > 0 and done["frozen_embedding_params"] == len(tok) * 64
    batch = _collate(chat, eight)
    chat.model.train()
    assert torch.equal(chat.model(**batch).loss, chat.model(**batch).loss)      # training mode, yet deterministic
    before = chat.model.bert.embeddings.word_embeddings.weight.clone()
    chat.model(**batch).loss.backward()
    assert chat.model.bert.embeddings.word_embeddings.weight.grad is None
    on, _ = _chat("imr", tok)
    on.model.train()
    assert not torch.equal(on.model(**batch).loss, on.model(**batch).loss)       # dropout on: two passes differ
    assert torch.equal(before, chat.model.bert.embeddings.word_embeddings.weight)


def test_threads_setting_takes_effect(tok, examples, tmp_path):
    old = torch.get_num_threads()
    try:
        chat, c = _chat("imr", tok, threads=1, max_steps=1, early_stopping_patience=None)
        train_model(chat.model, chat.collator(), examples["train"].select(range(8)), None, c, tmp_path, eval_strategy="no",
                    save_strategy="no", load_best_model_at_end=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)
