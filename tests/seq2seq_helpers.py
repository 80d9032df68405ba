"Shared by test_ed.py and test_baseline.py: a small ED decoder, eight short examples, full-batch fitting, the overfit check."
import torch

SMALL_ED = {"decoder_layers": 2, "decoder_hidden": 64, "decoder_heads": 2, "decoder_intermediate": 128}


def pick_eight(examples):
    "Eight training examples with short replies and short contexts (distinct contexts)."
    tr = examples["train"]
    rows = [tr[i] for i in range(len(tr)) if 2 <= len(tr[i]["reply_ids"]) <= 6 and len(tr[i]["context_ids"]) <= 24][:8]
    assert len(rows) == 8 and len({tuple(r["context_ids"]) for r in rows}) == 8
    return rows


def fit(chat, feats, steps, lr=2e-3):
    "Plain full-batch AdamW steps on `feats`; returns the losses."
    opt = torch.optim.AdamW([p for p in chat.model.parameters() if p.requires_grad], lr=lr)
    batch, losses = chat.collator(feats), []
    chat.model.train()
    for _ in range(steps):
        loss = chat.model(**batch).loss
        loss.backward(); opt.step(); opt.zero_grad()
        losses.append(loss.item())
    return losses


def assert_overfits(tok, chat, losses, eight):
    "The loss fell tenfold and greedy decoding gives back at least six of the eight replies exactly."
    assert losses[-1] < losses[0] / 10
    out = chat.generate([e["context"] for e in eight], max_new_tokens=10)
    hits = sum(o == tok.decode(e["reply_ids"], skip_special_tokens=True) for o, e in zip(out, eight))
    assert hits >= 6, list(zip(out, [e["reply"] for e in eight]))
