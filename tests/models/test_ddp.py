"""Lightning DDP through models.fit.loop.fit: two CPU processes over gloo train the ranker, each
on half of the batches, and end with identical weights (gradients are all-reduced)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Run as a script: Lightning's DDP launcher starts rank 1 by re-running this same command line.
SCRIPT = textwrap.dedent('''
    import hashlib, json, sys
    from pathlib import Path

    import numpy as np
    import torch
    from lightning.pytorch.callbacks import Callback

    from models.nn.config import RankerConfig
    from models.fit.data import ImpressionDataModule
    from models.fit.systems import RankerSystem
    from models.fit.loop import TrainConfig, fit


    def impressions(n, n_items, rng):
        clicked = rng.random(n) < 0.3
        history = rng.integers(-1, n_items, size=(n, 5))
        return {"candidate": rng.integers(0, n_items, n), "candidate_id": rng.integers(0, 64, n),
                "user_id": rng.integers(0, 64, n), "item_features": rng.random((n, 3)).astype(np.float32),
                "history": history, "history_ids": np.where(history >= 0, rng.integers(1, 64, (n, 5)), 0),
                "position": rng.integers(0, 10, n), "clicked": clicked,
                "watch_s": np.where(clicked, rng.random(n) * 5, 0).astype(np.float32),
                "converted": clicked & (rng.random(n) < 0.2)}


    class Topology(Callback):
        """Records what each rank saw: world size, backend, batches per epoch."""
        def on_train_end(self, trainer, pl_module):
            self.info = {"rank": trainer.global_rank, "world_size": trainer.world_size,
                         "backend": getattr(trainer.strategy, "process_group_backend", None),
                         "strategy": type(trainer.strategy).__name__,
                         "train_batches": int(trainer.num_training_batches)}


    if __name__ == "__main__":
        out, strategy, devices = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
        rng = np.random.default_rng(0)
        torch.manual_seed(0)
        system = RankerSystem(RankerConfig(content_dim=16, hidden=16, id_buckets=64, user_buckets=64).build(),
                              torch.randn(20, 16))
        data = ImpressionDataModule(impressions(256, 20, rng), impressions(64, 20, rng), batch_size=32)
        topology = Topology()
        result = fit(system, data, TrainConfig(checkpoint_dir=out / "checkpoints", max_epochs=2, patience=5,
                                               accelerator="cpu", strategy=strategy, devices=devices,
                                               resume=False), callbacks=[topology])
        digest = hashlib.sha256(b"".join(v.detach().cpu().numpy().tobytes()
                                         for v in system.ranker.state_dict().values())).hexdigest()
        record = {**topology.info, "weights_sha256": digest, "epochs": len(result.history)}
        (out / f"rank{topology.info['rank']}.json").write_text(json.dumps(record))
''')


def _train(tmp_path: Path, strategy: str, devices: int) -> list[dict]:
    out = tmp_path / strategy
    out.mkdir()
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(out), strategy, str(devices)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**_env(), "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def _env() -> dict[str, str]:
    import os

    # Gloo on loopback only: nothing leaves the machine.
    return {**os.environ, "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}


@pytest.mark.slow
def test_ddp_two_cpu_processes_over_gloo(tmp_path: Path) -> None:
    ranks = _train(tmp_path, "ddp", 2)
    single = _train(tmp_path, "auto", 1)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" and r["strategy"] == "DDPStrategy" for r in ranks)
    # The distributed sampler splits the 8 batches of one epoch between the two processes.
    assert single[0]["train_batches"] == 8 and all(r["train_batches"] == 4 for r in ranks)
    # All-reduced gradients keep the replicas identical.
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert all(r["epochs"] == 2 for r in ranks)
