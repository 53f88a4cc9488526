"""Command line of ``python -m models.offline.baselines``: import a dataset, split it by one protocol, fit the
reference and project models with the given settings, print (and write) the table."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from models.fit.id_models import FitSettings
from models.offline.baselines import BASELINES, baseline_table
from vidrec.config import Paths, resolve_root
from vidrec.imports.logs import LogFormat, import_logs
from vidrec.imports.native import import_native
from vidrec.imports.sequences import import_sequences
from vidrec.protocols import SPLITS, Protocol

_DEFAULTS = FitSettings()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m models.offline.baselines",
        description="Import a dataset and compare baselines under one protocol.",
    )
    parser.add_argument("format", choices=["native", "logs", "sequences"])
    parser.add_argument("source", help="native: folder or fsspec URL; logs: the log file; sequences: the file")
    parser.add_argument("--items", help="item table with text fields (logs and sequences formats)")
    parser.add_argument("--sep", default=",", help="log separator, e.g. '::' or '\\t' (logs format)")
    parser.add_argument("--no-header", action="store_true", help="the log has no header row (then give --columns)")
    parser.add_argument("--columns", help="comma-separated log column names, e.g. user_id,video_id,rating,ts")
    parser.add_argument("--rating-threshold", type=float, help="ratings below this are not positives")
    parser.add_argument("--ts-unit", default="s", help="unit of numeric timestamps: s, ms or us")
    parser.add_argument(
        "--split",
        default="leave_one_out",
        help=f"one of {', '.join(SPLITS)} (ratio_by_user: RecBole's per-user ratio split; "
        "random_global: all interactions shuffled together)",
    )
    parser.add_argument("--ratios", default="0.8,0.1,0.1", help="train,validation,test ratios (ratio splits)")
    parser.add_argument("--holdout-fraction", type=float, default=0.1, help="temporal split test fraction")
    parser.add_argument("--k-core", type=int, default=0)
    parser.add_argument("--sampled", type=int, metavar="N", help="SAMPLED ranking with N negatives (default: full)")
    parser.add_argument("--ks", default="10,20")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(BASELINES))
    settings = parser.add_argument_group("id-only model settings (BPR, LightGCN; defaults are RecBole's)")
    settings.add_argument("--dim", type=int, default=_DEFAULTS.dim, help="embedding dimension")
    settings.add_argument("--lr", type=float, default=_DEFAULTS.lr, help="Adam learning rate")
    settings.add_argument("--epochs", type=int, default=_DEFAULTS.epochs, help="most epochs")
    settings.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size)
    settings.add_argument(
        "--patience",
        type=int,
        default=_DEFAULTS.patience,
        help="stop after this many epochs without a better validation NDCG@10 (0 = off: "
        "fit on train + validation for all --epochs)",
    )
    settings.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay, help="BPR L2 penalty")
    settings.add_argument("--layers", type=int, default=_DEFAULTS.layers, help="LightGCN layers")
    settings.add_argument("--reg-weight", type=float, default=_DEFAULTS.reg_weight, help="LightGCN norm penalty")
    parser.add_argument("--encoder-epochs", type=int, default=5, help="multimodal_encoder epochs")
    parser.add_argument(
        "--retrieval-epochs",
        type=int,
        default=10,
        help="retrieval epochs (early stopping on validation loss, patience 3)",
    )
    parser.add_argument("--out", help="write the table here (.csv or .json)")
    return parser.parse_args(argv)


def fit_settings(args: argparse.Namespace) -> FitSettings:
    """The id-only models' settings from parsed arguments (``FitSettings`` checks the values)."""
    return FitSettings(
        dim=args.dim,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        weight_decay=args.weight_decay,
        layers=args.layers,
        reg_weight=args.reg_weight,
    )


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """CLI entry: import, split, fit, evaluate, print the table (and write it with --out)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = fit_settings(args)
    paths = Paths(resolve_root()).ensure()
    if args.format == "native":
        result = import_native(args.source, cache_dir=paths.root / "imports" / "media")
    elif args.format == "logs":
        sep = "\t" if args.sep in ("\\t", "tab") else args.sep
        fmt = LogFormat(
            sep=sep,
            header=not args.no_header,
            columns=tuple(args.columns.split(",")) if args.columns else None,
            rating_threshold=args.rating_threshold,
            ts_unit=args.ts_unit,
        )
        result = import_logs(args.source, args.items, fmt)
    else:
        result = import_sequences(args.source, args.items)
    print(result.report.summary())
    protocol = Protocol(
        split=args.split,
        ratios=tuple(float(r) for r in args.ratios.split(",")),
        holdout_fraction=args.holdout_fraction,
        seed=args.seed,
        k_core=args.k_core,
        ranking="sampled" if args.sampled else "full",
        n_negatives=args.sampled or 100,
        ks=tuple(int(k) for k in args.ks.split(",")),
    )
    table, split = baseline_table(
        result,
        protocol,
        tuple(args.models.split(",")),
        state=paths,
        settings=settings,
        encoder_epochs=args.encoder_epochs,
        retrieval_epochs=args.retrieval_epochs,
        seed=args.seed,
    )
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
            out.write_text(
                json.dumps(
                    {
                        "import": result.report.to_dict(),
                        "split": split.counts,
                        "notes": split.notes,
                        "settings": vars(settings),
                        "rows": table.to_dict(orient="records"),
                    },
                    indent=2,
                    default=str,
                )
            )
        else:
            table.drop(columns=["protocol_json"]).to_csv(out, index=False)
    return table


def run() -> None:
    """``main`` with bad input or settings turned into a one-line error (the message says which)."""
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    run()
