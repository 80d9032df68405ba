"ChatBERT-IMR: the collator, the decoding loop's promises, and a tiny model that overfits 8 replies and writes them back."
import math

import pytest
import torch

from dataclasses import asdict

from chatbert.config import load_config
from chatbert.data import detokenize, load_examples
from chatbert.experiments.experiment import ABLATIONS, config_diff
from chatbert.experiments.runs import is_rescoring
from chatbert.models.imr.model import IMRCollator, build_inputs, canvas_len, make_canvas
from chatbert.models.imr.chat import IMRChat
from chatbert.models.imr.decode import SCHEDULES, Refined, commit_and_remask, length_pmf, refine

MASK = 0


def small_cfg(**over):
    "The smoke config with short contexts and replies, so the tiny model overfits in seconds."
    o = {"data": {"max_reply_len": 8, "max_context_len": 24}, "train": {"eval_batch_size": 8}}
    for k, v in over.items():
        sec, key = k.split(".")
        o.setdefault(sec, {})[key] = v
    return load_config("smoke", o)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    "Tiny models run faster on one thread, above all on a busy machine."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def examples(tok):
    return load_examples(small_cfg().data, tok)


def peaked(p, V=64):
    "A logits_fn giving position i the token i+1 with probability p[i], whatever the canvas holds."
    C = len(p)
    probs = ((1 - p) / (V - 1))[:, None].repeat(1, V)
    probs[torch.arange(C), torch.arange(C) + 1] = p
    return lambda canvas, rows: probs.log()[None].expand(len(rows), C, V)


# -- the collator --

def test_collator_masks_exactly_the_drawn_share_of_the_canvas_only(tok, examples):
    C = canvas_len(small_cfg())
    col = IMRCollator(tok, C)
    feats = [examples["train"][i] for i in range(16)]
    torch.manual_seed(0)
    ratios, full = [], 0
    for _ in range(30):
        b = col(feats)
        labelled = b["labels"] != -100
        assert torch.equal(labelled.sum(1), (b["mask_ratio"] * C).round().long())
        assert not labelled[:, : -C - 1].any() and not labelled[:, -1].any()          # never the context
        assert torch.equal(labelled, b["input_ids"] == tok.mask_token_id)
        canvas = make_canvas([f["reply_ids"] for f in feats], C, tok.sep_token_id)
        assert torch.equal(b["labels"][:, -C - 1:-1][labelled[:, -C - 1:-1]], canvas[labelled[:, -C - 1:-1]])
        ctx = build_inputs([f["context_ids"] for f in feats], canvas, tok)["input_ids"][:, : -C - 1]
        assert torch.equal(b["input_ids"][:, : -C - 1], ctx)                           # context untouched
        ratios += (b["mask_ratio"] * C).round().long().tolist()
        full += int((b["mask_ratio"] == 1.0).sum())
    assert set(ratios) == set(range(1, C + 1)) and full > 0                             # every share 1/C..1; t = 1.0 occurs


def test_a_batch_of_at_least_C_rows_always_has_a_fully_masked_canvas(tok, examples):
    feats = [examples["train"][i] for i in range(8)]
    col = IMRCollator(tok, 8)
    assert all(col(feats)["mask_ratio"].max() == 1.0 for _ in range(50))


# -- the decoding loop, with planted logits --

def test_schedules_commit_different_counts_per_step():
    C = 12
    p = torch.tensor([.95, .9, .8, .7, .6, .4, .3, .3, .2, .2, .1, .05])
    counts = {}
    for s in SCHEDULES:
        r = refine(peaked(p), torch.full((1, C), MASK), torch.zeros(1, C, dtype=torch.bool), MASK, steps=4,
                   schedule=s, threshold=0.5, remask=False, trace=True)
        counts[s] = [int(e["committed"].sum()) for e in r.trace]
        assert sum(counts[s]) == C and (r.canvas != MASK).all()
    assert len({tuple(v) for v in counts.values()}) == 3, counts
    assert counts["cosine"][0] < counts["linear"][0] and counts["threshold"][0] == 5


def test_threshold_with_all_confident_logits_finishes_in_one_step():
    C = 10
    r = refine(peaked(torch.full((C,), 0.99)), torch.full((3, C), MASK), torch.zeros(3, C, dtype=torch.bool), MASK,
               steps=8, schedule="threshold", threshold=0.9, trace=True)
    assert r.forwards == 1 and len(r.trace) == 1 and r.steps.tolist() == [1, 1, 1]
    assert r.canvas.tolist() == [list(range(1, C + 1))] * 3


def test_remasking_a_planted_low_confidence_token():
    C = 6
    start = torch.full((1, C), MASK); start[0, 3] = 9                                  # a wrong token, committed
    planted = torch.zeros(1, C); planted[0, 3] = 0.02
    free = torch.zeros(1, C, dtype=torch.bool)
    r = refine(peaked(torch.full((C,), 0.6)), start, free, MASK, steps=4, schedule="linear", confidence=planted, trace=True)
    assert r.trace[0]["remasked"][0].nonzero().flatten().tolist() == [3]
    assert r.canvas[0, 3] == 4                                                          # re-predicted: the model's token
    r = refine(peaked(torch.full((C,), 0.6)), start, free, MASK, steps=4, schedule="linear", confidence=planted,
               remask=False, trace=True)
    assert r.canvas[0, 3] == 9 and not any(e["remasked"].any() for e in r.trace)


def test_confidences_are_measured_at_one_temperature_while_annealing_changes_sampling():
    C = 4
    p = torch.full((C,), 0.5)
    runs = {t: refine(peaked(p), torch.full((1, C), MASK), torch.zeros(1, C, dtype=torch.bool), MASK, steps=2,
                      schedule="linear", temperature=t0, temperature_end=t1, do_sample=True, remask=False, trace=True)
            for t, (t0, t1) in {"plain": (1.0, None), "annealed": (1.0, 0.1), "hot": (2.0, None)}.items()}
    assert [e["temperature"] for e in runs["annealed"].trace] == pytest.approx([1.0, 0.1])  # sampled at 0.1 at the end
    last = runs["annealed"].trace[-1]["proposal_conf"][0]
    assert torch.allclose(last[last > 0], torch.tensor(0.5))                              # but measured at 1.0
    assert runs["hot"].trace[0]["proposal_conf"][0, 0] < 0.2                              # the temperature itself counts


def test_mask_predict_rule_revises_past_a_hard_slot():
    "The rule that required a committed token to be weaker than every candidate never fired past one hard slot."
    score = torch.tensor([[0.0, 0.0, 0.6, 0.4, 0.001]])
    ok = torch.tensor([[False, False, True, True, True]])
    old = torch.tensor([[0.9, 0.05, 0.0, 0.0, 0.0]])
    commit, re = commit_and_remask(score, ok, torch.tensor([1]), old, ~ok, budget=2)
    assert re[0].nonzero().flatten().tolist() == [1] and commit[0].nonzero().flatten().tolist() == [2, 3]
    assert int(commit.sum()) - int(re.sum()) == 1                                         # still the schedule's one
    assert not commit_and_remask(score, ok, torch.tensor([1]), old, ~ok, budget=0)[1].any()


# -- a tiny model that overfits 8 replies --

def train_tiny(tok, examples, blind: bool, steps: int = 150):
    "Overfit IMRChat (tiny backbone) on 8 short replies with a plain torch loop."
    cfg = small_cfg(**{"imr.context_sees_canvas": not blind})
    torch.manual_seed(0)
    chat = IMRChat.from_config(cfg, tok)
    seen, feats = set(), []
    for ex in examples["train"]:
        key = tuple(ex["context_ids"])
        if 2 <= len(ex["reply_ids"]) <= 6 and key not in seen:
            seen.add(key); feats.append(ex)
        if len(feats) == 8: break
    col, model = chat.collator(), chat.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3)
    for _ in range(steps):
        loss = model(**col(feats)).loss
        loss.backward(); opt.step(); opt.zero_grad()
    model.eval()
    return chat, feats


@pytest.fixture(scope="module", params=[False, True], ids=["context_sees_canvas", "canvas_blind"])
def overfit(request, tok, examples):
    return (*train_tiny(tok, examples, blind=request.param), request.param)


def test_overfit_greedy_reproduces_replies_with_their_lengths(overfit):
    chat, feats, blind = overfit
    ctx = [f["context_ids"] for f in feats]
    for mode in ("end", "free"):                                                       # length from the end token
        out = chat.decode_ids(ctx, steps=chat.canvas_len, length=mode)
        hits = sum(t == list(f["reply_ids"]) for t, f in zip(out.tokens, feats))
        assert hits >= 6, (mode, out.tokens, [f["reply_ids"] for f in feats])
        assert sum(n == len(f["reply_ids"]) for n, f in zip(out.lengths.tolist(), feats)) >= 6
    if blind:                                                                           # every row trains the length head
        head = chat.decode_ids(ctx, steps=chat.canvas_len, length="head")
        assert sum(n == len(f["reply_ids"]) for n, f in zip(head.lengths.tolist(), feats)) >= 6
        beam = chat.decode_ids(ctx, steps=chat.canvas_len, length="beam", length_beam=3)
        assert sum(t == list(f["reply_ids"]) for t, f in zip(beam.tokens, feats)) >= 6


def test_batched_greedy_equals_one_by_one(overfit):
    chat, feats, _ = overfit
    ctx = [f["context_ids"] for f in feats] + [feats[0]["context_ids"][:3], [], feats[1]["context_ids"][::-1]]
    for kw in ({}, {"schedule": "threshold", "threshold": 0.7}):
        batched = chat.decode_ids(ctx, **kw).tokens
        single = [chat.decode_ids([c], **kw).tokens[0] for c in ctx]
        assert batched == single, kw


def test_fixed_tokens_survive_decoding(overfit, tok):
    chat, feats, _ = overfit
    hist = [["hello", "how are you today?"]] * 2
    q = tok.convert_tokens_to_ids("?")
    templates = [[None, q, None, None], [q, None]]
    out = chat.infill(hist, templates, steps=4)
    assert out.tokens[0][1] == q and out.tokens[1][0] == q and out.lengths.tolist() == [4, 2]
    assert out.canvas[0, 4:].eq(tok.sep_token_id).all()
    fixed = torch.full((1, chat.canvas_len), -1); fixed[0, 0] = q                       # not the reply's first token
    got = chat.decode_ids([feats[0]["context_ids"]], fixed=fixed)
    assert got.canvas[0, 0] == q


def test_trace_has_one_entry_per_step_run(overfit):
    chat, feats, _ = overfit
    hist = [list(feats[0]["context"]), list(feats[1]["context"])]
    replies, traces = chat.generate(hist, trace=True, steps=50, schedule="linear")
    out = chat.decode_ids(chat._contexts(hist), steps=50, schedule="linear")
    for tr, n in zip(traces, out.steps.tolist()):
        assert len(tr) == n < 50                                                        # stopped when nothing was masked
        assert [e["step"] for e in tr] == list(range(n)) and "[MASK]" not in tr[-1]["tokens"]
        assert all(e["committed"] for e in tr)


def test_cached_context_decoding_equals_full_passes(overfit):
    chat, feats, blind = overfit
    ctx = [f["context_ids"] for f in feats]
    inputs = build_inputs(ctx, torch.full((len(ctx), chat.canvas_len), chat.mask_id), chat.tokenizer)
    if not blind:                                                                       # a context that sees the canvas
        with pytest.raises(AssertionError, match="cached only"): chat.model.context_cache(**inputs)
        return
    with torch.no_grad():
        kv, _ = chat.model.context_cache(**inputs)
        assert torch.allclose(chat.model.canvas_logits(**inputs, kv=kv), chat.model.canvas_logits(**inputs), atol=1e-4)


def test_nelbo_drops_after_overfitting_and_is_seeded(overfit, tok):
    chat, feats, blind = overfit
    nl = chat.nelbo(feats, samples=4, seed=1)
    assert nl["nelbo_per_token"] < 1.0 and nl["tokens"] == sum(len(f["reply_ids"]) + 1 for f in feats)
    assert chat.nelbo(feats, samples=4, seed=1) == nl
    fresh = IMRChat.from_config(small_cfg(), tok)
    assert fresh.nelbo(feats, samples=4)["nelbo_per_token"] > 5


def test_nelbo_estimates_the_exact_bound_on_a_two_position_canvas(tok, examples):
    "With C = 2 the bound is (a0 + a1)/2 + (b0 + b1)/2 (a: the other position visible, b: none): checkable by hand."
    chat = IMRChat.from_config(small_cfg(**{"imr.canvas_len": 2}), tok)
    chat.model.eval()
    ex = examples["train"][0]
    canvas = make_canvas([ex["reply_ids"]], 2, tok.sep_token_id)[0]
    def nll(masked):
        cv = canvas.clone(); cv[masked] = tok.mask_token_id
        with torch.no_grad(): lp = chat.model(**build_inputs([ex["context_ids"]], cv[None], tok)).logits[0].log_softmax(-1)
        return [-lp[i, canvas[i]].item() for i in masked]
    a0, a1 = nll([0])[0], nll([1])[0]
    b0, b1 = nll([0, 1])
    exact = (a0 + a1) / 2 + (b0 + b1) / 2
    est = chat.nelbo([ex], samples=400, seed=0)
    assert abs(est["nelbo"] - exact) < 0.05 * exact


# -- the Trainer, saving and loading --

def test_fit_with_trainer_then_save_and_load(tmp_path, tok, examples):
    cfg = small_cfg(**{"train.max_steps": 4, "train.eval_steps": 2, "train.batch_size": 4, "imr.head_lr": 1e-2})
    chat = IMRChat.from_config(cfg, tok)
    train, val = examples["train"].select(range(32)), examples["validation"].select(range(min(8, len(examples["validation"]))))
    trainer = chat.fit(train, val, tmp_path / "run")
    hist = trainer.state.log_history
    evals = [h["eval_loss"] for h in hist if "eval_loss" in h]
    assert trainer.state.global_step == 4 and len(evals) >= 2 and all(math.isfinite(e) for e in evals)
    head_group = next(g for g in trainer.optimizer.param_groups if any(p is chat.model.cls.predictions.bias for p in g["params"]))
    emb_group = next(g for g in trainer.optimizer.param_groups
                     if any(p is chat.model.bert.embeddings.word_embeddings.weight for p in g["params"]))
    assert head_group["initial_lr"] == 1e-2 and emb_group["initial_lr"] == cfg.train.lr
    hist2 = [["hi!", "hey, what's up?"], ["Ünïcode 🎉 works?"]]
    before = chat.generate(hist2, steps=3)
    chat.save(tmp_path / "saved")
    loaded = IMRChat.load(tmp_path / "saved")
    assert loaded.generate(hist2, steps=3) == before and loaded.cfg == chat.cfg


def test_bad_inputs_fail_clearly(tmp_path, tok):
    chat = IMRChat.from_config(small_cfg(), tok)
    with pytest.raises(ValueError, match="empty"):
        chat.generate([["hello", "   "]])
    with pytest.raises(TypeError, match=r"Unknown decoding option\(s\) \['step'\]"):
        chat.generate([["hello"]], step=3)
    with pytest.raises(FileNotFoundError, match="not an IMR checkpoint"):
        IMRChat.load(tmp_path)
    chat.save(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(OSError, match="model.safetensors: cannot be read"):
        IMRChat.load(tmp_path / "c")
    long_history = [["word " * 500]]                                                    # left-truncated, no crash
    assert isinstance(chat.generate(long_history, steps=2)[0], str)


def test_generate_returns_detokenized_text(overfit, tok):
    chat, feats, _ = overfit
    hist = [list(feats[0]["context"]), list(feats[1]["context"])]
    out = chat.decode_ids(chat._contexts(hist))
    assert chat.generate(hist) == [detokenize(tok, t) for t in out.tokens]


# -- decoding options on the tiny model, with a planted dependence on the canvas --

@pytest.fixture(scope="module")
def planted(tok):
    """The tiny backbone (imr_smoke, canvas 25), with a planted dependence on the canvas that it cannot learn in
    seconds (trained for minutes it still predicts position marginals): each token's random successor gets a bonus after
    it, the end token is likely from position 12 on and before another end token, and logits sharpen as the canvas
    fills, so that, as in a trained model, confidence grows with what is known. Every decoding option acts on it."""
    torch.manual_seed(0)
    chat = IMRChat.from_config(load_config("imr_smoke"), tok)
    chat.model.eval()
    orig, C, V, E = chat.model.canvas_logits, chat.canvas_len, chat.model.config.vocab_size, chat.end_id
    succ = torch.randperm(V, generator=torch.Generator().manual_seed(0))
    def canvas_logits(input_ids, attention_mask, token_type_ids, kv=None):
        logits = orig(input_ids, attention_mask, token_type_ids, kv)                       # (b, C, V)
        canvas = input_ids[:, -C - 1:-1]; known = canvas != chat.mask_id                   # (b, C)
        bonus = torch.zeros_like(logits)
        bonus[:, 1:].scatter_(2, succ[canvas[:, :-1]][..., None], 3.0)
        bonus[:, 1:] *= known[:, :-1, None]
        bonus[:, 12:, E] += 3.0
        bonus[:, :-1, E] += 3.0 * (canvas[:, 1:] == E)
        return (logits + bonus) * (1 + 4 * known.float().mean(1))[:, None, None]
    chat.model.canvas_logits = canvas_logits
    ex = load_examples(chat.cfg.data, tok)
    return chat, [list(c) for c in ex["test"].select(range(8))["context"]]


def _tokens(chat, hist, **kw):
    return chat.decode_ids(chat._contexts(hist), **kw).tokens


def test_remasking_fires_is_counted_and_changes_the_replies(planted):
    chat, hist = planted
    on, off = chat.decode_ids(chat._contexts(hist)), chat.decode_ids(chat._contexts(hist), remask=False)
    assert (on.remasked > 0).all() and (off.remasked == 0).all() and on.tokens != off.tokens
    chat.generate(hist)
    assert chat.last_stats["remask_per_reply"] == pytest.approx(float(on.remasked.float().mean()))
    chat.generate(hist, remask=False)
    assert chat.last_stats == {"remask_per_reply": 0.0}
    few = chat.decode_ids(chat._contexts(hist), remask_budget=1)
    assert (few.remasked <= chat.cfg.decode.steps - 1).all() and few.remasked.sum() < on.remasked.sum()   # one a step


@pytest.mark.parametrize("option", [{"block_len": 4}, {"order": "margin"}, {"order": "entropy"}, {"canvas_penalty": 2.0}])
def test_each_decoding_option_changes_the_replies(planted, option):
    chat, hist = planted
    assert _tokens(chat, hist, **option) != _tokens(chat, hist)


def test_decoding_options_change_nothing_where_they_should_not(planted):
    chat, hist = planted
    base = _tokens(chat, hist)
    assert _tokens(chat, hist, block_len=chat.canvas_len) == base                     # one block: no blocks
    assert _tokens(chat, hist, defer_end=True) == base                                # the length is fixed first
    assert _tokens(chat, hist, temperature_end=0.2) == base                           # greedy: annealing only samples


def test_end_token_deferral_keeps_free_replies_from_collapsing(planted):
    chat, hist = planted
    eager = chat.decode_ids(chat._contexts(hist), length="free")
    deferred = chat.decode_ids(chat._contexts(hist), length="free", defer_end=True)
    assert eager.tokens != deferred.tokens
    assert deferred.lengths.sum() > eager.lengths.sum()                                # ends wait for the content


def test_length_beam_scores_the_end_by_the_length_prior(tok):
    "Two candidate lengths with equally confident tokens: the length's prior (the end's probability) decides."
    chat = IMRChat.from_config(small_cfg(), tok)
    C, E = chat.canvas_len, chat.end_id
    canvas = torch.full((2, C), E); canvas[0, :2] = 7; canvas[1, :3] = 8                # lengths 2 and 3, one context
    fixed = canvas == E
    res = Refined(canvas, torch.where(fixed, 1.0, 0.5), torch.ones(2, dtype=torch.long), 1, torch.zeros(2, dtype=torch.long))
    for prior, want in (([0.7, 0.3], 2), ([0.3, 0.7], 3)):
        out = chat._best(res, fixed, 1, 0, False, torch.tensor(prior).log())
        assert out.lengths.tolist() == [want]
        n = want
        assert out.score.item() == pytest.approx((n * math.log(0.5) + math.log(max(prior))) / (n + 1))


def test_length_beam_uses_the_length_distribution_it_drew_from(planted):
    chat, hist = planted
    ctx = chat._contexts(hist)
    out = chat.decode_ids(ctx, length="beam", length_beam=3)
    inputs = build_inputs(ctx, torch.full((len(ctx), chat.canvas_len), chat.mask_id), chat.tokenizer, chat.max_context)
    hi = min(chat.cfg.decode.max_new_tokens, chat.canvas_len - 1)
    pmf = length_pmf(chat.length_probs(inputs).cumsum(1), chat.cfg.decode.min_new_tokens, hi)      # the length head
    for i, n in enumerate(out.lengths.tolist()):
        logp = out.confidence[i, :n].clamp_min(1e-12).log().sum() + pmf[i, n].log()
        assert out.score[i].item() == pytest.approx((logp / (n + 1)).item(), rel=1e-4)


# -- every IMR ablation changes what it names --

IMR_ABLATIONS = [(base, name) for base, names in ABLATIONS.values() if load_config(base).model.variant == "imr"
                 for name in names]


@pytest.mark.parametrize("base,name", IMR_ABLATIONS, ids=[n for _, n in IMR_ABLATIONS])
def test_each_imr_ablation_changes_the_decoders_output_or_the_training_loss(base, name, planted, tok, examples):
    """A decoding ablation decodes the same test contexts differently from its base's decoding settings (on the planted
    tiny model); a training ablation changes the training loss of the tiny backbone on the same batch and masks."""
    chat, hist = planted
    changed = config_diff(name, base)
    trains = {k: v for k, v in changed.items() if not is_rescoring(k)}
    dec_base, dec_abl = asdict(load_config(base).decode), asdict(load_config(name).decode)
    assert trains or dec_base != dec_abl, f"{name} changes nothing: {changed}"
    if dec_base != dec_abl:
        assert _tokens(chat, hist, **dec_abl) != _tokens(chat, hist, **dec_base), changed
    if trains:
        feats = [examples["train"][i] for i in range(16)]
        losses = []
        for over in ({}, trains):
            chat_t = IMRChat.from_config(small_cfg(**over), tok)
            torch.manual_seed(1)
            with torch.no_grad(): losses.append(chat_t.model.eval()(**chat_t.collator()(feats)).loss.item())
        assert abs(losses[0] - losses[1]) > 1e-4, (changed, losses)


def test_k_canvases_on_one_context_encoding_equal_k_full_sequences():
    """`imr.canvases_per_context`: a canvas-blind context encoded once and shared by its K masked copies gives the loss and
    the gradients of the same K canvases each run as a full `[CLS] context [SEP] canvas [SEP]` sequence."""
    import torch
    from chatbert.backbone import load_backbone, load_tokenizer
    from chatbert.config import IMRConfig, load_config
    from chatbert.data import load_examples
    from chatbert.models.imr.model import IMRCollator, build_inputs, canvas_len, imr_model
    tok, cfg = load_tokenizer("tiny"), load_config("smoke")
    feats = [load_examples(cfg.data, tok)["train"][i] for i in range(5)]
    C, K = canvas_len(cfg), 3
    model = imr_model(load_backbone("tiny", "mlm", tok), C, IMRConfig(context_sees_canvas=False),
                      start=cfg.data.max_context_len + 2).eval()
    torch.manual_seed(0)
    b = IMRCollator(tok, C, copies=K, max_context=cfg.data.max_context_len)(feats)
    assert b["input_ids"].shape[0] == 5 and b["canvas_ids"].shape == (5 * K, C + 1)
    ratios = b["mask_ratio"].view(5, K)
    assert (ratios.max(1).values - ratios.min(1).values > 0.3).all()       # a context's copies spread over the ratios
    full = build_inputs([f["context_ids"] for f in feats for _ in range(K)], b["canvas_ids"][:, :-1], tok,
                        cfg.data.max_context_len)
    labels, w = torch.full_like(full["input_ids"], -100), torch.zeros(full["input_ids"].shape)
    labels[:, -C - 1:-1], w[:, -C - 1:-1] = b["labels"][:, :-1], b["loss_weights"][:, :-1]
    def loss_and_grad(**batch):
        model.zero_grad()
        loss = model(**batch).mlm_loss
        loss.backward()
        return loss.item(), model.bert.encoder.layer[0].attention.self.query.weight.grad.clone()
    (shared, g1), (separate, g2) = loss_and_grad(**b), loss_and_grad(**full, labels=labels, loss_weights=w)
    assert abs(shared - separate) < 1e-5 and torch.allclose(g1, g2, atol=1e-6), (shared, separate)
    assert b["loss_weights"].sum().item() == pytest.approx(1.0)            # the loss keeps the scale of K = 1
