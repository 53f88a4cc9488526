"""Training assets: the multimodal encoder, item embeddings, the two-tower retrieval model and the
multi-task ranker."""


import dagster as dg
import pandas as pd

from assets.reporting import table_md
from assets.resources import TRANSIENT_RETRY, WAREHOUSE_POOL, VidrecStorage
from models.serialization import TrainedModel
from models.steps import StepSettings, fit_encoder, fit_ranker, fit_retrieval, item_embedding_matrix
from vidrec.items import build_items
from vidrec.plots import markdown_image, training_curves

GROUP = "training"


class TrainingSettings(dg.ConfigurableResource):
    """Epoch budgets and the seed; tests and quick runs lower the budgets."""

    encoder_epochs: int = 8
    ranker_epochs: int = 10
    patience: int = 3
    seed: int = 0
    retrieval_epochs: int = 10

    def step_settings(self) -> StepSettings:
        return StepSettings(self.encoder_epochs, self.ranker_epochs, self.patience, self.seed,
                            self.retrieval_epochs)


def accepted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "accepted"].drop(columns=["status", "reason"]).reset_index(drop=True)


def _training_metadata(model: TrainedModel, storage: VidrecStorage, run_id: str) -> dict:
    plot = training_curves(model.history, f"{model.kind} training", storage.paths.reports / run_id / f"{model.kind}_curves.png")
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
def multimodal_encoder(context: dg.AssetExecutionContext, video_probe: pd.DataFrame, video_metadata: pd.DataFrame,
                       video_features: pd.DataFrame, text_features: pd.DataFrame, interactions: pd.DataFrame,
                       storage: VidrecStorage, training: TrainingSettings) -> dg.Output[TrainedModel]:
    """Frames + audio + text encoder trained with cross-modal InfoNCE and co-engagement (Lightning)."""
    items, excluded = build_items(video_probe, video_metadata, video_features, text_features)
    out_dir = storage.paths.checkpoints / "encoder" / context.run_id
    model = fit_encoder(items, accepted(interactions), out_dir, training.step_settings())
    return dg.Output(model, metadata={**_training_metadata(model, storage, context.run_id),
                                      "excluded_videos": table_md(excluded)})


@dg.asset(group_name=GROUP, kinds={"pytorch", "duckdb"}, io_manager_key="warehouse_io", owners=["team:ml-platform"],
          pool=WAREHOUSE_POOL, retry_policy=TRANSIENT_RETRY)
def item_embeddings(context: dg.AssetExecutionContext, multimodal_encoder: TrainedModel, video_probe: pd.DataFrame,
                    video_metadata: pd.DataFrame, video_features: pd.DataFrame,
                    text_features: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """One L2-normalised content embedding per item from the trained encoder."""
    items, _ = build_items(video_probe, video_metadata, video_features, text_features)
    vectors = item_embedding_matrix(multimodal_encoder, items)
    frame = pd.DataFrame({"video_id": items["video_id"], "model_version": context.run_id,
                          "embedding": list(vectors)})
    return dg.Output(frame, metadata={"items": len(frame), "dim": int(vectors.shape[1])})


@dg.asset(group_name=GROUP, kinds={"pytorch"}, owners=["team:ml-platform"])
def ranker(context: dg.AssetExecutionContext, item_embeddings: pd.DataFrame, interactions: pd.DataFrame,
           video_probe: pd.DataFrame, video_metadata: pd.DataFrame, video_features: pd.DataFrame,
           text_features: pd.DataFrame, storage: VidrecStorage, training: TrainingSettings) -> dg.Output[TrainedModel]:
    """Multi-task ranker (click, watch time, ESMM conversion) with target attention over history."""
    items, _ = build_items(video_probe, video_metadata, video_features, text_features)
    out_dir = storage.paths.checkpoints / "ranker" / context.run_id
    model = fit_ranker(items, item_embeddings, accepted(interactions), out_dir, training.step_settings())
    return dg.Output(model, metadata=_training_metadata(model, storage, context.run_id))


@dg.asset(group_name=GROUP, kinds={"pytorch"}, owners=["team:ml-platform"])
def retrieval_model(context: dg.AssetExecutionContext, item_embeddings: pd.DataFrame, interactions: pd.DataFrame,
                    video_probe: pd.DataFrame, video_metadata: pd.DataFrame, video_features: pd.DataFrame,
                    text_features: pd.DataFrame, storage: VidrecStorage,
                    training: TrainingSettings) -> dg.Output[TrainedModel]:
    """Two-tower retrieval (history sequence model × content + optional id item tower), in-batch
    sampled softmax with logQ correction; recall@10 on the validation day's clicks."""
    items, _ = build_items(video_probe, video_metadata, video_features, text_features)
    out_dir = storage.paths.checkpoints / "retrieval" / context.run_id
    model = fit_retrieval(items, item_embeddings, accepted(interactions), out_dir, training.step_settings())
    return dg.Output(model, metadata={**_training_metadata(model, storage, context.run_id),
                                      "val_recall_at_10": model.extra["val_recall_at_10"]})
