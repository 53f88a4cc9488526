"""Training speed: Lightning's epoch time over a plain PyTorch loop (same model, data, seed and
optimiser), whether both reach the same losses, and training samples/s of the encoder, the
retrieval model and the ranker.

    .venv/bin/python benchmarks/train.py [--quick] [--world data/demo] [--out PATH]

The two loops alternate (Lightning, plain, Lightning, ...) and the medians are compared; each
repeat starts from the same initial weights. On a CUDA device the ranker is also timed there
(bf16 mixed precision, as ``models.fit.loop.fit`` uses) and the speed-up reported; without one the
GPU part is skipped and says so.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from models.fit.data import ClickDataModule, EncoderDataModule, ImpressionDataModule  # noqa: E402
from models.fit.steps import item_tensors, ranker_inputs  # noqa: E402
from models.fit.systems import MultimodalEncoderSystem, RankerSystem, RetrievalSystem  # noqa: E402
from models.fit.trainers import click_arrays, embed_items, impression_arrays  # noqa: E402
from models.nn.config import EncoderConfig, RankerConfig, RetrievalConfig  # noqa: E402
from models.nn.retrieval import sampling_log_q  # noqa: E402
from vidrec.config import DEMO_PSEUDONYM_KEY, Paths, resolve_root  # noqa: E402
from vidrec.engagement import co_engaged_neighbours, taste_before_sessions  # noqa: E402
from vidrec.items import tables_from_directory  # noqa: E402
from vidrec.splits import temporal_split  # noqa: E402

log = logging.getLogger("benchmarks.train")
SEED = 0


class BatchLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _trainer(accelerator: str, precision: str, callbacks: list) -> L.Trainer:
    # The same switches models.fit.loop.fit uses, minus validation, checkpoints and the CSV logger:
    # this times one training epoch.
    return L.Trainer(
        max_epochs=1,
        accelerator=accelerator,
        devices=1,
        precision=precision,
        deterministic=accelerator == "cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )


def lightning_epoch(
    system: L.LightningModule, data: L.LightningDataModule, accelerator: str = "cpu", precision: str = "32-true"
) -> tuple[float, list[float]]:
    recorder = BatchLosses()
    L.seed_everything(SEED, verbose=False)
    started = time.perf_counter()
    _trainer(accelerator, precision, [recorder]).fit(system, datamodule=data)
    return time.perf_counter() - started, recorder.losses


def plain_epoch(system: RankerSystem, data: ImpressionDataModule) -> tuple[float, list[float]]:
    """The loop Lightning runs for us, written out: same sampler, optimiser, loss and RNG seed."""
    L.seed_everything(SEED, verbose=False)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    data.setup("fit")
    loader = data.train_dataloader()
    loader.sampler.set_epoch(0)
    optimiser = system.configure_optimizers()
    system.train()
    losses = []
    for batch in loader:
        loss = system.losses(batch)["loss"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    return time.perf_counter() - started, losses


def ranker_parts(world: Path, quick: bool):
    paths = Paths(resolve_root()).ensure()
    items, events = tables_from_directory(world, paths.features, DEMO_PSEUDONYM_KEY)
    torch.manual_seed(SEED)
    # An untrained encoder's embeddings: the speed of a step does not depend on their quality.
    encoder = EncoderConfig().build()
    tensors = item_tensors(items)
    vectors = embed_items(encoder, tensors)
    embeddings = pd.DataFrame({"video_id": items["video_id"], "embedding": list(vectors)})
    config = RankerConfig()
    inputs = ranker_inputs(items, embeddings, events, config)
    split = temporal_split(events)
    clicks = events[events["clicked"]]
    train = split.part(events, "train")
    if quick:
        train = train.iloc[: min(len(train), 20_000)]
    taste = taste_before_sessions(train, events, inputs.embeddings, inputs.item_index)
    arrays = impression_arrays(
        train,
        clicks,
        inputs.item_index,
        inputs.buckets,
        inputs.features,
        config.history_length,
        inputs.user_buckets,
        taste,
    )
    return items, events, tensors, inputs, arrays, clicks, split


def compare_loops(arrays: dict, embeddings: np.ndarray, repeats: int) -> dict:
    torch.manual_seed(SEED)
    initial = RankerSystem(RankerConfig().build(), torch.as_tensor(embeddings))
    lightning_s, plain_s, diffs = [], [], []
    for r in range(repeats):
        # Alternate which goes first so drift on a shared machine hits both alike.
        order = ("lightning", "plain") if r % 2 == 0 else ("plain", "lightning")
        losses = {}
        for name in order:
            system = copy.deepcopy(initial)
            data = ImpressionDataModule(arrays, arrays, batch_size=512, seed=SEED)
            if name == "lightning":
                seconds, losses[name] = lightning_epoch(system, data)
                lightning_s.append(seconds)
            else:
                seconds, losses[name] = plain_epoch(system, data)
                plain_s.append(seconds)
        diffs.append(max(abs(a - b) for a, b in zip(losses["lightning"], losses["plain"])))
        log.info(
            "repeat %d/%d: lightning %.2f s, plain %.2f s, max |loss diff| %.2e, %d steps",
            r + 1,
            repeats,
            lightning_s[-1],
            plain_s[-1],
            diffs[-1],
            len(losses["plain"]),
        )
    return {
        "lightning_epoch_s": statistics.median(lightning_s),
        "plain_epoch_s": statistics.median(plain_s),
        "lightning_over_plain_epoch": statistics.median(lightning_s) / statistics.median(plain_s),
        "loss_abs_diff": max(diffs),
        "steps_per_epoch": len(losses["plain"]),
        "mean_epoch_loss": float(np.mean(losses["plain"])),
    }


def throughput(
    items,
    events,
    tensors,
    inputs,
    arrays,
    clicks,
    split,
    quick: bool,
    accelerator: str = "cpu",
    precision: str = "32-true",
) -> dict[str, float]:
    """Training samples per second over one Lightning epoch of each system (validation excluded)."""
    torch.manual_seed(SEED)
    out = {}
    neighbours = co_engaged_neighbours(split.part(clicks, "fit"), items["video_id"].tolist(), 2, SEED)
    encoder = MultimodalEncoderSystem(EncoderConfig().build())
    data = EncoderDataModule(tensors, neighbours, batch_size=64, seed=SEED)
    data.setup()
    seconds, _ = lightning_epoch(encoder, data, accelerator, precision)
    out["encoder"] = len(data._train_pairs) / seconds
    train_clicks = split.part(clicks, "train")
    log_q = sampling_log_q(
        train_clicks["video_id"].map(inputs.item_index).to_numpy(np.int64), len(inputs.item_index), 256
    )
    click_data = click_arrays(train_clicks, clicks, inputs.item_index, inputs.buckets, 20, log_q)
    retrieval = RetrievalSystem(RetrievalConfig().build(), torch.as_tensor(inputs.embeddings))
    seconds, _ = lightning_epoch(
        retrieval, ClickDataModule(click_data, click_data, batch_size=256, seed=SEED), accelerator, precision
    )
    out["retrieval"] = len(click_data["item"]) / seconds
    ranker = RankerSystem(RankerConfig().build(), torch.as_tensor(inputs.embeddings))
    seconds, _ = lightning_epoch(
        ranker, ImpressionDataModule(arrays, arrays, batch_size=512, seed=SEED), accelerator, precision
    )
    out["ranker"] = len(arrays["candidate"]) / seconds
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny world, 20k impressions at most, 2 repeats")
    parser.add_argument("--world", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)  # as models.fit.loop.fit does on CPU (see TrainConfig.cpu_threads)
    world = args.world or Path("data/tiny" if args.quick else "data/demo")
    repeats = args.repeats or (2 if args.quick else 5)
    parts = ranker_parts(world, args.quick)
    items, events, tensors, inputs, arrays, clicks, split = parts
    loops = compare_loops(arrays, inputs.embeddings, repeats)
    cpu = throughput(*parts, quick=args.quick)
    result = {
        "sizes": {
            "world": world.name,
            "items": len(items),
            "train_impressions": len(arrays["candidate"]),
            "repeats": repeats,
            "batch_size": 512,
            "threads": torch.get_num_threads(),
        },
        "device": "cpu",
        "lightning_over_plain_epoch": round(loops["lightning_over_plain_epoch"], 4),
        "loss_abs_diff": loops["loss_abs_diff"],
        "loops": loops,
        "samples_per_s": cpu,
    }
    if torch.cuda.is_available():
        torch.set_num_threads(4)
        result["device"] = torch.cuda.get_device_name(0)
        gpu = throughput(*parts, quick=args.quick, accelerator="gpu", precision="bf16-mixed")
        result["samples_per_s_gpu"] = gpu
        result["gpu_speedup"] = {k: round(gpu[k] / cpu[k], 2) for k in cpu}
    else:
        result["gpu"] = "skipped: no CUDA device on this machine"
    print(write_result("train", result, args.out, args.quick))


if __name__ == "__main__":
    main()
