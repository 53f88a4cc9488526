"""Baselines: shapes, input checks, determinism, BPR and LightGCN learning user clusters that popularity
cannot see, early stopping, the command line's settings, and the table on an imported log."""

import numpy as np
import pytest
import torch

from models.fit.id_models import FitSettings, ValidationSet
from models.nn.lightgcn import LightGCN, fit_lightgcn, normalised_adjacency
from models.offline.baselines import BPRModel, fit_bpr, most_popular_scores


def _clustered(n_clusters: int = 4, users_per: int = 30, items_per: int = 12, per_user: int = 6, seed: int = 0):
    """Each user interacts only with items of its own cluster; one more in-cluster item is held out.

    Item popularity is flat across clusters, so popularity carries no signal about the held-out item.
    """
    rng = np.random.default_rng(seed)
    train_u, train_i, test_u, test_i = [], [], [], []
    for c in range(n_clusters):
        items = np.arange(c * items_per, (c + 1) * items_per)
        for k in range(users_per):
            user = c * users_per + k
            chosen = rng.choice(items, per_user + 1, replace=False)
            train_u += [user] * per_user
            train_i += chosen[:per_user].tolist()
            test_u.append(user)
            test_i.append(chosen[-1])
    return (
        np.array(train_u),
        np.array(train_i),
        np.array(test_u),
        np.array(test_i),
        n_clusters * users_per,
        n_clusters * items_per,
    )


def _hit_rate(
    scores: np.ndarray, train_u: np.ndarray, train_i: np.ndarray, test_u: np.ndarray, test_i: np.ndarray, k: int
) -> float:
    scores = scores.astype(np.float64).copy()
    scores[np.searchsorted(test_u, train_u), train_i] = -np.inf  # never recommend what the user already has
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean([t in row for t, row in zip(test_i, top)]))


def test_most_popular_counts_distinct_users() -> None:
    scores = most_popular_scores(np.array([0, 0, 0, 1, 2]), np.array([1, 1, 1, 1, 3]), n_items=5)
    assert scores.shape == (5,)
    np.testing.assert_array_equal(scores, [0, 2, 0, 1, 0])


def test_most_popular_rejects_out_of_range_items() -> None:
    with pytest.raises(ValueError, match="train_item_idx"):
        most_popular_scores(np.array([0]), np.array([7]), n_items=5)


def test_bpr_shapes_and_determinism() -> None:
    train_u, train_i, _, _, n_users, n_items = _clustered()
    settings = FitSettings(dim=8, epochs=3, patience=0)
    a = fit_bpr(train_u, train_i, n_users, n_items, settings, seed=3)
    b = fit_bpr(train_u, train_i, n_users, n_items, settings, seed=3)
    assert isinstance(a, BPRModel)
    scores = a.score(np.array([0, 5, 7]))
    assert scores.shape == (3, n_items) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, b.score(np.array([0, 5, 7])))
    c = fit_bpr(train_u, train_i, n_users, n_items, settings, seed=4)
    assert not np.array_equal(scores, c.score(np.array([0, 5, 7])))


def test_bpr_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="user_idx"):
        fit_bpr(np.array([0, 9]), np.array([0, 1]), n_users=3, n_items=4)
    with pytest.raises(ValueError, match="empty"):
        fit_bpr(np.array([], dtype=int), np.array([], dtype=int), n_users=3, n_items=4)
    model = fit_bpr(np.array([0, 1]), np.array([0, 1]), n_users=2, n_items=4, settings=FitSettings(epochs=1))
    with pytest.raises(ValueError, match="user_idx"):
        model.score(np.array([2]))
    with pytest.raises(ValueError, match="variant"):
        fit_bpr(np.array([0, 1]), np.array([0, 1]), n_users=2, n_items=4, variant="fancy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr"):
        FitSettings(lr=0.0)


def test_bpr_beats_most_popular_on_user_clusters() -> None:
    train_u, train_i, test_u, test_i, n_users, n_items = _clustered()
    k = 5
    popular = np.broadcast_to(most_popular_scores(train_u, train_i, n_items), (n_users, n_items))
    bpr = fit_bpr(
        train_u, train_i, n_users, n_items, FitSettings(dim=16, epochs=40, lr=0.05, batch_size=256, patience=0), seed=0
    )
    pop_hr = _hit_rate(popular, train_u, train_i, test_u, test_i, k)
    bpr_hr = _hit_rate(bpr.score(test_u), train_u, train_i, test_u, test_i, k)
    # in-cluster chance is 5/6 of the 6 unseen cluster items; popularity is near 5/42
    assert bpr_hr > 0.6, bpr_hr
    assert bpr_hr > pop_hr + 0.3, (bpr_hr, pop_hr)


def test_lightgcn_learns_the_planted_clusters() -> None:
    train_u, train_i, test_u, test_i, n_users, n_items = _clustered()
    settings = FitSettings(dim=16, epochs=30, lr=0.05, batch_size=256, patience=0)
    model = fit_lightgcn(train_u, train_i, n_users, n_items, settings, seed=0)
    assert isinstance(model, LightGCN)
    scores = model.score(test_u)
    assert scores.shape == (n_users, n_items) and scores.dtype == np.float32
    hr = _hit_rate(scores, train_u, train_i, test_u, test_i, k=5)
    noise = np.random.default_rng(0).random((n_users, n_items))
    random_hr = _hit_rate(noise, train_u, train_i, test_u, test_i, k=5)
    assert hr > 0.6 and hr > random_hr + 0.4, (hr, random_hr)
    again = fit_lightgcn(train_u, train_i, n_users, n_items, settings, seed=0)
    np.testing.assert_array_equal(scores, again.score(test_u))  # seeded and repeatable


def test_lightgcn_graph_is_symmetric_normalised_and_its_gradient_is_autograds() -> None:
    pairs = np.array([[0, 0], [0, 1], [1, 1]])
    adjacency = normalised_adjacency(pairs, n_users=2, n_items=2)
    dense = adjacency.to_dense()
    # degrees: u0 2, u1 1, i0 1, i1 2 -> entry (u, i) = 1 / sqrt(deg_u * deg_i)
    expected = torch.zeros(4, 4)
    for (u, i), value in {(0, 0): 1 / np.sqrt(2), (0, 1): 1 / 2, (1, 1): 1 / np.sqrt(2)}.items():
        expected[u, 2 + i] = expected[2 + i, u] = value
    torch.testing.assert_close(dense, expected)
    model = LightGCN(adjacency, 2, 2, dim=3, layers=2, generator=torch.Generator().manual_seed(0))
    users, items = model.propagate()
    (users.sum() + (items**2).sum()).backward()
    mine = model.user.weight.grad.clone()
    model.zero_grad()
    x = torch.cat([model.user.weight, model.item.weight])
    layers = [x, dense @ x, dense @ (dense @ x)]
    final = sum(layers) / 3
    (final[:2].sum() + (final[2:] ** 2).sum()).backward()
    torch.testing.assert_close(mine, model.user.weight.grad)


def test_early_stopping_keeps_the_best_validation_epoch() -> None:
    train_u, train_i, test_u, test_i, n_users, n_items = _clustered()
    valid = ValidationSet.from_pairs((train_u, train_i), (test_u, test_i), n_users, n_items)
    settings = FitSettings(dim=16, epochs=60, lr=0.2, batch_size=256, patience=3)
    model = fit_bpr(train_u, train_i, n_users, n_items, settings, seed=0, valid=valid)
    info = model.fit_info
    history = [entry["val_ndcg"] for entry in info["history"]]
    assert info["epochs_run"] < 60 and info["epochs_run"] - info["best_epoch"] == 3
    assert info["best_val_ndcg"] == pytest.approx(max(history), abs=1e-6)
    assert valid.ndcg(model) == pytest.approx(max(history), abs=1e-6)  # the best epoch's weights are back


def _write_clustered_log(directory, seed: int = 0):
    """The clustered data as an interaction log + text item table (cluster words in the titles)."""
    train_u, train_i, test_u, test_i, _, n_items = _clustered(seed=seed)
    words = ["guitar concert", "football match", "pasta recipe", "mountain hiking"]
    rows = [(f"u{u}", f"i{i}", 1000 + t) for t, (u, i) in enumerate(zip(train_u, train_i))]
    rows += [(f"u{u}", f"i{i}", 100000 + t) for t, (u, i) in enumerate(zip(test_u, test_i))]
    log = directory / "log.tsv"
    log.write_text("user_id\tvideo_id\tts\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in rows))
    items = directory / "items.csv"
    items.write_text("video_id,title\n" + "".join(f"i{i},{words[i // 12]} {i}\n" for i in range(n_items)))
    return str(log), str(items)


def test_baseline_table_on_an_imported_log(tmp_path, vidrec_root) -> None:
    from models.offline.baselines import baseline_table
    from vidrec.config import Paths
    from vidrec.imports.logs import LogFormat, import_logs
    from vidrec.protocols import Protocol

    log, items = _write_clustered_log(tmp_path)
    result = import_logs(log, items, LogFormat(sep="\t"))
    protocol = Protocol(split="leave_one_out", ks=(5,))
    settings = FitSettings(dim=16, epochs=40, lr=0.05, batch_size=256, patience=5)
    table, split = baseline_table(
        result,
        protocol,
        ("most_popular", "bpr", "lightgcn", "retrieval", "text_content"),
        state=Paths(vidrec_root).ensure(),
        settings=settings,
        retrieval_epochs=3,
    )
    rows = table.set_index("model")
    assert list(rows.index) == ["most_popular", "bpr", "lightgcn", "retrieval", "text_content"]
    assert rows.loc["bpr", "fitted_on"] == "train, early stopping on validation ndcg@10"
    assert (rows["protocol"] == protocol.label()).all()
    assert (rows["users_evaluated"] == 120).all()
    # id-only BPR and the text path both see the clusters; popularity cannot
    for name in ("bpr", "lightgcn", "retrieval", "text_content"):
        assert rows.loc[name, "ndcg@5"] > rows.loc["most_popular", "ndcg@5"] + 0.2, name


def test_cli_writes_the_table_with_the_protocol(tmp_path) -> None:
    import json

    from models.offline.cli import main

    log, items = _write_clustered_log(tmp_path)
    out = tmp_path / "table.json"
    main(
        [
            "logs",
            log,
            "--items",
            items,
            "--sep",
            "\\t",
            "--models",
            "most_popular,bpr",
            "--split",
            "random_global",
            "--sampled",
            "20",
            "--epochs",
            "2",
            "--patience",
            "0",
            "--dim",
            "8",
            "--out",
            str(out),
        ]
    )
    record = json.loads(out.read_text())
    assert record["settings"]["dim"] == 8 and record["settings"]["epochs"] == 2
    assert record["import"]["tables"]["events"]["reconciles"] is True
    assert [row["model"] for row in record["rows"]] == ["most_popular", "bpr"]
    assert all("SAMPLED ranking (20 negatives" in row["protocol"] for row in record["rows"])
    assert "sampled20_ndcg@10" in record["rows"][0]


def test_cli_settings_parse_into_fit_settings() -> None:
    from models.offline.cli import fit_settings, parse_args

    args = parse_args(
        [
            "logs",
            "x.tsv",
            "--split",
            "ratio_by_user",
            "--dim",
            "32",
            "--lr",
            "0.01",
            "--epochs",
            "7",
            "--batch-size",
            "512",
            "--patience",
            "4",
            "--weight-decay",
            "0.001",
            "--layers",
            "3",
        ]
    )
    assert args.split == "ratio_by_user"
    assert fit_settings(args) == FitSettings(
        dim=32, lr=0.01, epochs=7, batch_size=512, patience=4, weight_decay=0.001, layers=3
    )
    assert fit_settings(parse_args(["logs", "x.tsv"])) == FitSettings()  # RecBole's defaults
    with pytest.raises(ValueError, match="dim"):
        fit_settings(parse_args(["logs", "x.tsv", "--dim", "0"]))


def test_cli_names_the_renamed_split(tmp_path) -> None:
    from models.offline.cli import main

    log, items = _write_clustered_log(tmp_path)
    with pytest.raises(ValueError, match="random_global"):
        main(["logs", log, "--items", items, "--sep", "\\t", "--models", "most_popular", "--split", "random"])


def test_the_project_encoder_trains_on_text_only_imported_items(tmp_path, vidrec_root) -> None:
    """Items without media go through the multimodal encoder with visual and audio masked."""
    from models.offline.baselines import baseline_table
    from vidrec.config import Paths
    from vidrec.imports.logs import LogFormat, import_logs
    from vidrec.protocols import Protocol

    log, items = _write_clustered_log(tmp_path)
    result = import_logs(log, items, LogFormat(sep="\t"))
    table, _ = baseline_table(
        result,
        Protocol(ks=(5,)),
        ("most_popular", "multimodal_encoder"),
        state=Paths(vidrec_root).ensure(),
        encoder_epochs=3,
    )
    rows = table.set_index("model")
    assert rows.loc["multimodal_encoder", "users_evaluated"] == 120
    assert rows.loc["multimodal_encoder", "ndcg@5"] > rows.loc["most_popular", "ndcg@5"] + 0.2
