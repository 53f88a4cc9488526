"""Id-only reference recommenders every other model must beat: most-popular and BPR matrix factorisation,
and the table that compares them with the project's models (text path, multimodal item encoder) on
imported data under one protocol.

BPR is written in plain torch rather than taken from ``implicit`` because callers need an
``nn.Module`` with a seeded, bit-for-bit repeatable fit, and ``implicit``'s multithreaded BPR is neither.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from models.config import EncoderConfig
from models.data import ItemTensors
from models.train import EncoderTraining, embed_items, train_encoder
from models.training import TrainConfig
from vidrec.behaviour import co_engaged_neighbours
from vidrec.config import Paths, resolve_root
from vidrec.imports.content import ProfileScorer, item_text_embeddings
from vidrec.imports.covers import item_shards, no_media_shard
from vidrec.imports.logs import LogFormat, import_logs
from vidrec.imports.native import import_native
from vidrec.imports.sequences import import_sequences
from vidrec.imports.tables import ImportResult
from vidrec.media.features import FeatureConfig, extract_features
from vidrec.media.probe import file_sha256
from vidrec.protocols import Protocol, Split, evaluate, split_interactions

log = logging.getLogger(__name__)


def _check_indices(name: str, idx: np.ndarray, size: int) -> np.ndarray:
    idx = np.asarray(idx)
    if idx.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer indices, got shape {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"{name} holds indices outside [0, {size}): min {idx.min()}, max {idx.max()}")
    return idx.astype(np.int64, copy=False)


def most_popular_scores(train_user_idx: np.ndarray, train_item_idx: np.ndarray, n_items: int) -> np.ndarray:
    """Score per item = number of distinct training users who interacted with it, shape ``[n_items]``.

    Distinct users, not raw counts, so one heavy user replaying an item cannot make it "popular".
    """
    items = _check_indices("train_item_idx", train_item_idx, n_items)
    users = np.asarray(train_user_idx).astype(np.int64, copy=False)
    if users.shape != items.shape:
        raise ValueError(f"train_user_idx {users.shape} and train_item_idx {items.shape} must be row-aligned")
    if items.size == 0:
        return np.zeros(n_items, dtype=np.float32)
    pairs = np.unique(np.stack([users, items], axis=1), axis=0)
    return np.bincount(pairs[:, 1], minlength=n_items).astype(np.float32)


class BPRModel(nn.Module):
    """User and item factors plus an item bias; score(u, i) = <p_u, q_i> + b_i."""

    def __init__(self, n_users: int, n_items: int, dim: int = 32, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user.weight, std=0.1, generator=generator)
        nn.init.normal_(self.item.weight, std=0.1, generator=generator)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Row-aligned scores for (users[k], items[k])."""
        return (self.user(users) * self.item(items)).sum(-1) + self.item_bias(items).squeeze(-1)

    @torch.no_grad()
    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for each user, shape ``[len(user_idx), n_items]`` (float32)."""
        users = torch.from_numpy(_check_indices("user_idx", user_idx, self.n_users))
        out = self.user(users) @ self.item.weight.T + self.item_bias.weight.T
        return out.numpy().astype(np.float32, copy=False)


def fit_bpr(user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int, dim: int = 32,
            epochs: int = 20, seed: int = 0, lr: float = 0.05, batch_size: int = 4096,
            weight_decay: float = 1e-4, threads: int = 1) -> BPRModel:
    """Fit BPR on positive (user, item) pairs with one uniformly sampled negative item per pair.

    Duplicate pairs are collapsed (BPR ranks items, repeats carry no extra order information).
    The same inputs and seed give the same weights: every random draw comes from one seeded generator.
    ``weight_decay`` is an L2 penalty on the factors touched by each batch (the usual BPR regulariser).
    ``threads``: torch intra-op threads while fitting (restored after). The batches are small, and on a
    busy 2-core box 2 spinning OpenMP threads made a 3-epoch fit 40x slower than 1 thread (16 s vs 0.4 s).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _fit_bpr(user_idx, item_idx, n_users, n_items, dim, epochs, seed, lr, batch_size, weight_decay)
    finally:
        torch.set_num_threads(previous)


def _fit_bpr(user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int, dim: int, epochs: int,
             seed: int, lr: float, batch_size: int, weight_decay: float) -> BPRModel:
    users = _check_indices("user_idx", user_idx, n_users)
    items = _check_indices("item_idx", item_idx, n_items)
    if users.shape != items.shape:
        raise ValueError(f"user_idx {users.shape} and item_idx {items.shape} must be row-aligned")
    if users.size == 0:
        raise ValueError("fit_bpr needs at least one (user, item) interaction; the training set is empty")
    if n_items < 2:
        raise ValueError(f"fit_bpr needs at least 2 items to sample negatives, got n_items={n_items}")
    pairs = np.unique(np.stack([users, items], axis=1), axis=0)
    pos_u, pos_i = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])

    gen = torch.Generator().manual_seed(seed)  # init, shuffling and negatives; the global RNG is untouched
    model = BPRModel(n_users, n_items, dim, generator=gen)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(pairs)
    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        negatives = torch.randint(0, n_items, (n,), generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            u, i, j = pos_u[batch], pos_i[batch], negatives[batch]
            p_u, q_i, q_j = model.user(u), model.item(i), model.item(j)
            margin = ((p_u * (q_i - q_j)).sum(-1)
                      + model.item_bias(i).squeeze(-1) - model.item_bias(j).squeeze(-1))
            reg = weight_decay * (p_u.pow(2).sum() + q_i.pow(2).sum() + q_j.pow(2).sum()) / len(batch)
            loss = -F.logsigmoid(margin).mean() + reg
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.detach().item() * len(batch)
        if epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            elapsed = time.perf_counter() - started
            log.info("bpr epoch %d/%d: loss %.4f, %d pairs, %.0f pairs/s", epoch + 1, epochs, total / n, n,
                     n * (epoch + 1) / max(elapsed, 1e-9))
    model.eval()
    return model


# --- the baseline table on imported data -------------------------------------------------------------

BASELINES = ("most_popular", "bpr", "text_content", "multimodal_encoder")


def _catalog(items: pd.DataFrame, features_dir: Path) -> pd.DataFrame:
    """video_id, shard_path, has_visual, has_audio, has_text for ``items``: videos extracted like the
    pipeline does, covers as one-frame videos, media-less items (or failed videos) with blank shards."""
    shards = item_shards(items, features_dir)
    videos = items[items["media_kind"] == "video"]
    if len(videos):
        accepted = pd.DataFrame({"video_id": videos["video_id"], "path": videos["media_path"],
                                 "sha256": [file_sha256(str(p)) for p in videos["media_path"]]})
        extracted = extract_features(accepted, features_dir, FeatureConfig(), workers=1, progress=False)
        extracted["has_visual"] = extracted["status"] == "accepted"
        failed = ~extracted["has_visual"]
        if failed.any():  # keep the item, with its visual and audio marked missing
            _, blank_path = no_media_shard(features_dir)
            extracted.loc[failed, "shard_path"] = str(blank_path)
            log.warning("%d videos failed feature extraction; scored from text only", int(failed.sum()))
        shards = pd.concat([shards, extracted], ignore_index=True)
    catalog = items[["video_id", "text"]].merge(shards[["video_id", "shard_path", "has_visual", "has_audio"]],
                                                on="video_id", how="left", validate="one_to_one")
    catalog["has_audio"] = catalog["has_audio"].fillna(False).astype(bool)
    catalog["has_visual"] = catalog["has_visual"].astype(bool)
    catalog["has_text"] = catalog["text"].fillna("") != ""
    return catalog


def _encoder_scorer(result: ImportResult, split: Split, state: Paths, seed: int, epochs: int) -> ProfileScorer:
    """Train the project's multimodal item encoder on the imported catalog (co-engagement from the fit
    part only) and score users by their profile over its content vectors."""
    items = result.items.set_index("video_id").loc[split.item_ids].reset_index()
    catalog = _catalog(items, state.features)
    texts = item_text_embeddings(catalog["text"].fillna("").tolist(), state.features / "text")
    tensors = ItemTensors.from_catalog(catalog, texts)
    fit = split.fit
    clicks = pd.DataFrame({"user_key": fit["user_idx"].to_numpy(), "video_id": split.item_ids[fit["item_idx"]]})
    params = EncoderTraining()
    neighbours = co_engaged_neighbours(clicks, list(split.item_ids), params.neighbours_per_item, seed)
    run_dir = Path(tempfile.mkdtemp(prefix="import-encoder-", dir=state.checkpoints))
    encoder, _ = train_encoder(tensors, neighbours, EncoderConfig(), params,
                               TrainConfig(checkpoint_dir=run_dir, max_epochs=epochs, seed=seed, resume=False))
    return ProfileScorer(embed_items(encoder, tensors), split.matrix(fit))


def baseline_table(result: ImportResult, protocol: Protocol, models: tuple[str, ...] = BASELINES,
                   state: Paths | None = None, bpr_epochs: int = 20, bpr_dim: int = 32, encoder_epochs: int = 5,
                   seed: int = 0) -> tuple[pd.DataFrame, Split]:
    """Split ``result``'s positives by ``protocol``, fit each model on train + validation and score the
    test part with the same metric code: one row per model, the protocol recorded in each row.

    ``text_content`` (the project's frozen text features) and ``multimodal_encoder`` (the project's
    item encoder, trained here on the imported catalog) need ``state`` (where feature shards, the text
    cache and checkpoints go); a model that cannot run says why in the split's notes.
    """
    unknown = set(models) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; choose from {list(BASELINES)}")
    split = split_interactions(result.positives(), protocol, item_ids=result.items["video_id"].tolist(),
                               clock_time=result.signals.get("clock_time", True))
    fit = split.fit
    users, items = fit["user_idx"].to_numpy(), fit["item_idx"].to_numpy()
    n_users, n_items = len(split.user_ids), len(split.item_ids)
    texts = result.items.set_index("video_id").loc[split.item_ids, "text"].fillna("").tolist()
    rows = []
    for name in models:
        started = time.perf_counter()
        if name in ("text_content", "multimodal_encoder") and state is None:
            split.notes.append(f"{name} skipped: no state directory given for features and checkpoints")
            continue
        if name == "text_content" and not any(texts):
            split.notes.append("text_content skipped: no item has text")
            continue
        if name == "most_popular":
            popularity = most_popular_scores(users, items, n_items)
            score = lambda batch, p=popularity: np.broadcast_to(p, (len(batch), n_items))  # noqa: E731
        elif name == "bpr":
            score = fit_bpr(users, items, n_users, n_items, dim=bpr_dim, epochs=bpr_epochs, seed=seed).score
        elif name == "text_content":
            score = ProfileScorer(item_text_embeddings(texts, state.features / "text"), split.matrix(fit))
        else:
            score = _encoder_scorer(result, split, state, seed, encoder_epochs)
        fitted = time.perf_counter() - started
        row = evaluate(split, score, name)
        row.update(fit_s=round(fitted, 2), eval_s=round(time.perf_counter() - started - fitted, 2))
        log.info("%s: %s", name, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
        rows.append(row)
    return pd.DataFrame(rows), split


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.baselines",
                                     description="Import a dataset and compare baselines under one protocol.")
    parser.add_argument("format", choices=["native", "logs", "sequences"])
    parser.add_argument("source", help="native: folder or fsspec URL; logs: the log file; sequences: the file")
    parser.add_argument("--items", help="item table with text fields (logs and sequences formats)")
    parser.add_argument("--sep", default=",", help="log separator, e.g. '::' or '\\t' (logs format)")
    parser.add_argument("--no-header", action="store_true", help="the log has no header row (then give --columns)")
    parser.add_argument("--columns", help="comma-separated log column names, e.g. user_id,video_id,rating,ts")
    parser.add_argument("--rating-threshold", type=float, help="ratings below this are not positives")
    parser.add_argument("--ts-unit", default="s", help="unit of numeric timestamps: s, ms or us")
    parser.add_argument("--split", default="leave_one_out", choices=["temporal", "leave_one_out", "random"])
    parser.add_argument("--ratios", default="0.8,0.1,0.1", help="random split ratios")
    parser.add_argument("--holdout-fraction", type=float, default=0.1, help="temporal split test fraction")
    parser.add_argument("--k-core", type=int, default=0)
    parser.add_argument("--sampled", type=int, metavar="N", help="SAMPLED ranking with N negatives (default: full)")
    parser.add_argument("--ks", default="10,20")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(BASELINES))
    parser.add_argument("--bpr-epochs", type=int, default=20)
    parser.add_argument("--encoder-epochs", type=int, default=5)
    parser.add_argument("--out", help="write the table here (.csv or .json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """CLI entry: import, split, fit, evaluate, print the table (and write it with --out)."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    paths = Paths(resolve_root()).ensure()
    if args.format == "native":
        result = import_native(args.source, cache_dir=paths.root / "imports" / "media")
    elif args.format == "logs":
        sep = "\t" if args.sep in ("\\t", "tab") else args.sep
        fmt = LogFormat(sep=sep, header=not args.no_header,
                        columns=tuple(args.columns.split(",")) if args.columns else None,
                        rating_threshold=args.rating_threshold, ts_unit=args.ts_unit)
        result = import_logs(args.source, args.items, fmt)
    else:
        result = import_sequences(args.source, args.items)
    print(result.report.summary())
    protocol = Protocol(split=args.split, ratios=tuple(float(r) for r in args.ratios.split(",")),
                        holdout_fraction=args.holdout_fraction, seed=args.seed, k_core=args.k_core,
                        ranking="sampled" if args.sampled else "full", n_negatives=args.sampled or 100,
                        ks=tuple(int(k) for k in args.ks.split(",")))
    table, split = baseline_table(result, protocol, tuple(args.models.split(",")), state=paths,
                                  bpr_epochs=args.bpr_epochs, encoder_epochs=args.encoder_epochs, seed=args.seed)
    print(f"protocol: {protocol.label()}")
    print(f"split: {split.counts}")
    for note in split.notes:
        print(f"note: {note}")
    shown = table.drop(columns=["protocol_json", "protocol"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".json":
            out.write_text(json.dumps({"import": result.report.to_dict(), "split": split.counts,
                                       "notes": split.notes, "rows": table.to_dict(orient="records")},
                                      indent=2, default=str))
        else:
            table.drop(columns=["protocol_json"]).to_csv(out, index=False)
    return table


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad input or settings: the message says which
        raise SystemExit(f"error: {error}") from None
