"""Training assets: the multimodal encoder, item embeddings, the two-tower retrieval model and the
multi-task ranker."""

from dataclasses import fields

import dagster as dg
import pandas as pd

from assets.resources import RawData, VidrecStorage, warehouse_asset
from models.fit.retrieval_step import fit_retrieval
from models.fit.steps import StepSettings, fit_encoder, fit_ranker, item_embedding_matrix
from models.serving.weights import TrainedModel
from vidrec.commerce_tables import read_live_sessions
from vidrec.ingest import accepted_rows
from vidrec.plots import markdown_image, training_curves

GROUP = "training"
_DEFAULTS = StepSettings()


class TrainingSettings(dg.ConfigurableResource):
    """Epoch budgets and the seed; tests and quick runs lower the budgets. The defaults are
    ``models.fit.steps.StepSettings``'s (the one typed place), ``params.yaml`` overrides them for ``dvc repro``."""

    encoder_epochs: int = _DEFAULTS.encoder_epochs
    ranker_epochs: int = _DEFAULTS.ranker_epochs
    patience: int = _DEFAULTS.patience
    seed: int = _DEFAULTS.seed
    retrieval_epochs: int = _DEFAULTS.retrieval_epochs
    visual_encoder: str = _DEFAULTS.visual_encoder

    def step_settings(self) -> StepSettings:
        return StepSettings(**{f.name: getattr(self, f.name) for f in fields(StepSettings)})


def _training_metadata(model: TrainedModel, storage: VidrecStorage, run_id: str) -> dict:
    plot = training_curves(
        model.history, f"{model.kind} training", storage.paths.reports / run_id / f"{model.kind}_curves.png"
    )
    last = model.history[-1] if model.history else {}
    return {
        "curves": dg.MetadataValue.md(markdown_image(plot, f"{model.kind} training curves")),
        "curves_png": dg.MetadataValue.path(str(plot)),
        "epochs": len(model.history),
        **{k: round(v, 5) for k, v in last.items() if k.endswith("_loss")},
        "fit": dg.MetadataValue.json(model.fit),
        "details": dg.MetadataValue.json(model.extra),
        "weights": dg.MetadataValue.path(model.weights_path),
    }


@dg.asset(group_name=GROUP, kinds={"pytorch"}, owners=["team:ml-platform"])
def multimodal_encoder(
    context: dg.AssetExecutionContext,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    storage: VidrecStorage,
    training: TrainingSettings,
) -> dg.Output[TrainedModel]:
    """Frames + audio + text encoder trained with cross-modal InfoNCE and co-engagement (Lightning)."""
    out_dir = storage.paths.checkpoints / "encoder" / context.run_id
    model = fit_encoder(items, accepted_rows(interactions), out_dir, training.step_settings())
    return dg.Output(model, metadata=_training_metadata(model, storage, context.run_id))


@warehouse_asset(GROUP, kinds={"pytorch", "duckdb"})
def item_embeddings(
    context: dg.AssetExecutionContext, multimodal_encoder: TrainedModel, items: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """One L2-normalised content embedding per item from the trained encoder."""
    vectors = item_embedding_matrix(multimodal_encoder, items)
    frame = pd.DataFrame({"video_id": items["video_id"], "model_version": context.run_id, "embedding": list(vectors)})
    return dg.Output(frame, metadata={"items": len(frame), "dim": int(vectors.shape[1])})


@dg.asset(group_name=GROUP, kinds={"pytorch"}, owners=["team:ml-platform"])
def ranker(
    context: dg.AssetExecutionContext,
    item_embeddings: pd.DataFrame,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    storage: VidrecStorage,
    training: TrainingSettings,
    raw_data: RawData,
) -> dg.Output[TrainedModel]:
    """Multi-task ranker (click, watch time, ESMM conversion) with target attention over history, brand and
    category, and whether the video's host was live at the impression's time (the data's live sessions)."""
    out_dir = storage.paths.checkpoints / "ranker" / context.run_id
    live = read_live_sessions(raw_data.directory)
    model = fit_ranker(
        items, item_embeddings, accepted_rows(interactions), out_dir, training.step_settings(), live=live
    )
    return dg.Output(model, metadata=_training_metadata(model, storage, context.run_id))


@dg.asset(group_name=GROUP, kinds={"pytorch"}, owners=["team:ml-platform"])
def retrieval_model(
    context: dg.AssetExecutionContext,
    item_embeddings: pd.DataFrame,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    storage: VidrecStorage,
    training: TrainingSettings,
) -> dg.Output[TrainedModel]:
    """Two-tower retrieval (history sequence model × content + optional id item tower), in-batch
    sampled softmax with logQ correction; recall@10 on the validation day's clicks."""
    out_dir = storage.paths.checkpoints / "retrieval" / context.run_id
    model = fit_retrieval(items, item_embeddings, accepted_rows(interactions), out_dir, training.step_settings())
    return dg.Output(
        model,
        metadata={
            **_training_metadata(model, storage, context.run_id),
            "val_recall_at_10": model.extra["val_recall_at_10"],
        },
    )
