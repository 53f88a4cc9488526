"""Runs ONE RecBole 1.2.1 model on split files in RecBole's atomic format and prints one JSON line.

Executed by ``benchmarks/real_data.py --compare-recbole`` with the interpreter of RecBole's own virtual
environment (never the project's): ``python recbole_runner.py CONFIG.json``. The config names the model,
``data_path``, ``dataset`` and every setting; the split files are ``<dataset>.{train,valid,test}.inter``
(RecBole's ``benchmark_filename``), so RecBole trains, validates and tests on exactly vidrec's split.

Compatibility shims for RecBole 1.2.1 on torch 2.13 live here, not in vidrec: torch >= 2.6 loads
checkpoints with ``weights_only=True``, and RecBole's checkpoint holds its pickled ``Config``; scipy >= 1.12
has no ``dok_matrix._update``, which RecBole's LightGCN uses to build its graph (scipy 1.6, its pin, has no
wheel for Python 3.11).
"""

from __future__ import annotations

import json
import sys
import time

import torch
from scipy import sparse

_load = torch.load


def _load_full(*args, **kwargs):  # RecBole reloads its own best checkpoint, written a moment before
    kwargs.setdefault("weights_only", False)
    return _load(*args, **kwargs)


torch.load = _load_full


def _dok_update(self, data: dict) -> None:  # scipy >= 1.12 dropped dok_matrix._update; LightGCN calls it
    self._dict.update(data)


if not hasattr(sparse.dok_matrix, "_update"):
    sparse.dok_matrix._update = _dok_update


def main(config_path: str) -> None:
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    with open(config_path, encoding="utf-8") as handle:
        settings = json.load(handle)
    torch.set_num_threads(int(settings.pop("threads", 1)))
    name = settings.pop("model")
    config = Config(model=name, dataset=settings.pop("dataset"), config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    epochs = []
    train_epoch = trainer._train_epoch

    def counted(*args, **kwargs):  # RecBole does not report how many epochs early stopping let run
        epochs.append(1)
        return train_epoch(*args, **kwargs)

    trainer._train_epoch = counted
    started = time.perf_counter()
    best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
    fit_s = time.perf_counter() - started
    result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    print(
        json.dumps(
            {
                "model": name,
                "fit_s": round(fit_s, 2),
                "best_valid_ndcg10": float(best_valid),
                "epochs_run": len(epochs),
                "best_epoch": len(epochs) - trainer.cur_step,
                "users": int(dataset.user_num - 1),
                "items": int(dataset.item_num - 1),
                "interactions": int(len(dataset.inter_feat)),
                "test": {k: float(v) for k, v in result.items()},
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
