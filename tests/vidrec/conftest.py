"""Fixtures shared by the tests of vidrec's evaluation suite."""

import pytest

from tests.vidrec.eval_fixtures import RESAMPLES, K, loaded, random_tables
from vidrec.evaluation.metrics import SuiteSettings, evaluate
from vidrec.evaluation.tables import bootstrap_weights


@pytest.fixture(scope="module")
def suite():
    """The suite over small random tables, once per module: (tables, result, replicate rows, user weights)."""
    tables = random_tables(seed=3, k=K)
    con = loaded(tables)
    result = evaluate(con, SuiteSettings(k=K, resamples=RESAMPLES, seed=11), catalogue_size=60, n_users=40)
    reps = con.execute("SELECT * FROM metric_reps").df()
    weights = bootstrap_weights(tables["impressions"]["user_key"].unique(), RESAMPLES, 11)
    return tables, result, reps, weights
