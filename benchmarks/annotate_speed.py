"""Labels per second of hackrisk's `score` mode vs the paper's generate-and-parse method.

SmolLM2-135M-Instruct on 2 CPU threads, real tweets (relevance task), a 5-prompt × 3-temperature
multiverse. Ours: `hackrisk.annotate.annotate(mode="score")` (one forward pass per item and
prompt, shared prompt prefix computed once, all temperatures from that pass). Paper: one
`model.generate(max_new_tokens=20)` per item and configuration, then the parser. Both are timed on
subsets of the 200 items (``--items``, default 16, best of two runs; ``--paper-items``, default 2)
and reported per label; the 200-item times are extrapolated from the per-label figures.
Compute bound: 2 × (non-embedding parameters) × (tokens our method must process) + the LM head on
the scored positions, divided by the measured throughput of torch matmuls shaped like the model's.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def data_path() -> Path:
    env = os.environ.get("HACKRISK_DATA_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return root / "llmhacking" / "relevance_tweets23.csv.gz"


SYSTEM = "You label tweets. A tweet is relevant if it is about content moderation on social media."
SHOTS = [{"role": "user", "content": "Tweet: Twitter suspended my account for no reason."},
         {"role": "assistant", "content": "relevant"},
         {"role": "user", "content": "Tweet: I had pasta for lunch today."},
         {"role": "assistant", "content": "irrelevant"}]
PROMPTS = {
    "few_shot": [{"role": "system", "content": SYSTEM}, *SHOTS, {"role": "user", "content": "Tweet: {text}"}],
    "few_shot_q": [{"role": "system", "content": SYSTEM}, *SHOTS,
                   {"role": "user", "content": "Is this tweet relevant or irrelevant? Tweet: {text}"}],
    "zero_shot": "Is this tweet about content moderation? Answer relevant or irrelevant.\n\nTweet: {text}",
    "zero_shot_def": ("Content moderation means platforms removing, labelling or ranking user posts. Classify "
                      "the tweet as relevant (about content moderation) or irrelevant.\n\nTweet: {text}"),
    "system": [{"role": "system", "content": SYSTEM + " Answer with one word: relevant or irrelevant."},
               {"role": "user", "content": "{text}"}],
}
TEMPS = [0.0, 0.7, 1.0]


def matmul_gflops(d: int, ff: int, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(512, d), torch.randn(d, ff)
    for _ in range(3):
        a @ b
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - t) / 10)
    return 2 * 512 * d * ff / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=16, help="items timed for score mode (200 = the full set)")
    ap.add_argument("--paper-items", type=int, default=2, help="items timed for the paper method")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    import torch

    from hackrisk.annotate import TaskSpec, annotate, load_default_model, parse_response

    torch.set_num_threads(args.threads)
    items = pd.read_csv(data_path()).head(200)[["id", "text"]]
    spec = TaskSpec("relevance", ["relevant", "irrelevant"], PROMPTS)
    be = load_default_model()
    be.batch_size = 8
    be.num_threads = args.threads
    sub = items.head(args.items)

    # ---- ours: score mode, prefix reuse, all temperatures from one pass --------------------------
    # the machine is shared: best of two runs, matmul throughput measured around them (max)
    cfg = be.model.config
    gflops = matmul_gflops(cfg.hidden_size, cfg.intermediate_size, args.threads)
    s_ours = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        cube = annotate(sub, spec, models=be, temperatures=TEMPS, cache=None, progress=False)
        s_ours = min(s_ours, time.perf_counter() - t0)
    gflops = max(gflops, matmul_gflops(cfg.hidden_size, cfg.intermediate_size, args.threads))
    n_labels_ours = int((cube["label"].values >= 0).sum())
    per_label_ours = s_ours / n_labels_ours

    # ---- paper: one generate(max_new_tokens=20) per item and configuration, then parse ----------
    paper = items.head(args.paper_items)
    n_paper = 0
    t0 = time.perf_counter()
    for pid in spec.prompt_ids:
        for t in TEMPS:
            for text in paper["text"]:
                ids = torch.tensor([be._encode(be.render(spec.render(pid, text)))])
                kw = {"do_sample": True, "temperature": t, "top_k": 0, "top_p": 1.0} if t > 0 else {"do_sample": False}
                with torch.inference_mode():
                    out = be.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=20,
                                            pad_token_id=be.pad_id, **kw)
                parse_response(be.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True), spec)
                n_paper += 1
    s_paper = time.perf_counter() - t0
    per_label_paper = s_paper / n_paper

    # ---- compute bound of our method --------------------------------------------------------------
    n_params = sum(p.numel() for p in be.model.parameters())
    n_embed = cfg.vocab_size * cfg.hidden_size
    n_nonembed = n_params - n_embed  # tied LM head counted separately below
    from hackrisk.annotate.backends.local import SENTINEL

    tokens = 0
    for pid in spec.prompt_ids:
        prefix = be.render(spec.render(pid, SENTINEL)).split(SENTINEL)[0]
        p_len = len(be._encode(prefix))
        tokens += p_len
        key_tokens = sum(len(be.tok(f, add_special_tokens=False)["input_ids"])
                         for k in spec.answer_keys for f in {k, k.capitalize()})
        for text in sub["text"]:
            tokens += len(be._encode(be.render(spec.render(pid, text)))) - p_len + key_tokens
    scored = len(sub) * len(spec.prompt_ids) * 4
    flops = 2 * n_nonembed * tokens + 2 * n_embed * scored
    s_bound = flops / (gflops * 1e9)

    print(json.dumps({
        "benchmark": "annotate_speed",
        "ratio": round(per_label_paper / per_label_ours, 2),
        "target": 10,
        "ratio_vs_compute_bound": round(s_ours / s_bound, 2),
        "target_vs_compute_bound": 3,
        "labels_per_second_ours": round(1 / per_label_ours, 2),
        "labels_per_second_paper": round(1 / per_label_paper, 3),
        "seconds_ours": round(s_ours, 2),
        "seconds_paper": round(s_paper, 2),
        "seconds_compute_bound": round(s_bound, 2),
        "seconds_ours_200_items_extrapolated": round(per_label_ours * 200 * 15, 1),
        "seconds_paper_200_items_extrapolated": round(per_label_paper * 200 * 15, 1),
        "n_items_ours": len(sub), "n_labels_ours": n_labels_ours,
        "n_items_paper": len(paper), "n_labels_paper": n_paper,
        "configurations": len(spec.prompt_ids) * len(TEMPS),
        "tokens_processed_ours": tokens, "matmul_gflops": round(gflops, 1), "n_params": n_params,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
