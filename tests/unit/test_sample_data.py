"""Unit tests of the synthetic vehicle insurance cross-sell generator and its seeding CLI."""

import sys
import types
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score

from include.demo.sample_data import generate_documents, generate_frame
from include.demo.seed import main

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 3, 1, tzinfo=UTC)
FEATURES = [
    "Gender",
    "Age",
    "Driving_License",
    "Region_Code",
    "Previously_Insured",
    "Vehicle_Age",
    "Vehicle_Damage",
    "Annual_Premium",
    "Policy_Sales_Channel",
    "Vintage",
]
VALID_VEHICLE_AGES = {"< 1 Year", "1-2 Year", "> 2 Years"}


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_frame(20_000, start=START, end=END, seed=7)


def share(mask: pd.Series) -> float:
    return float(mask.mean())


# --- marginals ----------------------------------------------------------------------------------------


def test_label_and_binary_marginals(customers: pd.DataFrame) -> None:
    assert 0.09 <= share(customers["Response"] == 1) <= 0.15
    assert 0.51 <= share(customers["Gender"] == "Male") <= 0.57
    assert 0.42 <= share(customers["Previously_Insured"] == 1) <= 0.50
    assert 0.99 <= share(customers["Driving_License"] == 1) < 1.0
    assert 0.45 <= share(customers["Vehicle_Damage"] == "Yes") <= 0.55
    assert set(customers["Gender"]) == {"Male", "Female"}
    assert set(customers["Vehicle_Damage"]) == {"Yes", "No"}


def test_vehicle_age_categories_and_shares(customers: pd.DataFrame) -> None:
    shares = customers["Vehicle_Age"].value_counts(normalize=True)
    assert set(shares.index) == VALID_VEHICLE_AGES
    assert 0.39 <= shares["< 1 Year"] <= 0.47
    assert 0.48 <= shares["1-2 Year"] <= 0.56
    assert 0.02 <= shares["> 2 Years"] <= 0.07


def test_young_customers_mostly_drive_new_cars(customers: pd.DataFrame) -> None:
    young = customers["Age"] < 30
    assert share(customers.loc[young, "Vehicle_Age"] == "< 1 Year") > 0.8
    assert share(customers.loc[~young, "Vehicle_Age"] == "< 1 Year") < 0.25


def test_age_is_bimodal_within_bounds(customers: pd.DataFrame) -> None:
    age = customers["Age"]
    assert age.dtype == np.int64
    assert age.min() >= 20
    assert age.max() <= 85
    assert 36 <= age.mean() <= 41
    counts = age.value_counts().sort_index()
    # A young peak, a dip in the early thirties, a second broad peak in the forties.
    assert counts.loc[23:26].mean() > 1.5 * counts.loc[31:34].mean()
    assert counts.loc[40:50].mean() > 1.2 * counts.loc[31:34].mean()


def test_premium_flat_share_and_median(customers: pd.DataFrame) -> None:
    premium = customers["Annual_Premium"]
    assert 0.15 <= share(premium == 2630.0) <= 0.19
    assert premium.between(2630.0, 540_165.0).all()
    assert 28_000 <= premium[premium > 2630.0].median() <= 34_000


def test_region_and_channel_codes(customers: pd.DataFrame) -> None:
    regions = customers["Region_Code"].value_counts(normalize=True)
    assert customers["Region_Code"].between(0, 52).all()
    assert 0.25 <= regions[28.0] <= 0.31
    assert 0.07 <= regions[8.0] <= 0.11
    channels = customers["Policy_Sales_Channel"].value_counts(normalize=True)
    assert customers["Policy_Sales_Channel"].between(1, 163).all()
    assert 0.31 <= channels[152.0] <= 0.39
    assert 0.18 <= channels[26.0] <= 0.24
    assert 0.16 <= channels[124.0] <= 0.22
    assert customers["Vintage"].between(10, 299).all()


def test_response_follows_the_original_concept(customers: pd.DataFrame) -> None:
    rate = customers.groupby("Previously_Insured")["Response"].mean()
    assert rate[1] < 0.01
    damage = customers.groupby("Vehicle_Damage")["Response"].mean()
    assert damage["Yes"] > 10 * damage["No"]
    channel_152 = customers["Policy_Sales_Channel"] == 152
    assert customers.loc[channel_152, "Response"].mean() < customers.loc[~channel_152, "Response"].mean() / 2


# --- reproducibility and time range ------------------------------------------------------------------


def test_same_seed_reproduces_documents() -> None:
    first = generate_documents(500, start=START, end=END, seed=3, malformed_share=0.1)
    second = generate_documents(500, start=START, end=END, seed=3, malformed_share=0.1)
    assert first == second


def test_different_seed_gives_different_documents() -> None:
    first = generate_documents(500, start=START, end=END, seed=3)
    second = generate_documents(500, start=START, end=END, seed=4)
    assert sum(a == b for a, b in zip(first, second, strict=True)) == 0


def test_ingested_at_is_aware_utc_sorted_and_inside_range() -> None:
    documents = generate_documents(5_000, start=START, end=END, seed=1)
    moments = [doc["ingested_at"] for doc in documents]
    assert all(moment.utcoffset() == timedelta(0) for moment in moments)
    assert all(START <= moment < END for moment in moments)
    assert moments == sorted(moments)
    # Uniform over the range: both halves get about half of the documents.
    middle = START + (END - START) / 2
    assert 0.47 <= sum(moment < middle for moment in moments) / len(moments) <= 0.53


def test_naive_range_is_taken_as_utc() -> None:
    naive = generate_frame(200, start=START.replace(tzinfo=None), end=END.replace(tzinfo=None), seed=2)
    aware = generate_frame(200, start=START, end=END, seed=2)
    pd.testing.assert_frame_equal(naive, aware)


# --- documents and malformed rows ---------------------------------------------------------------------


def defects_of(document: dict) -> list[str]:
    """The realistic defects a document carries, checked independently of the generator."""
    found = []
    if "Age" not in document:
        found.append("missing Age")
    elif not isinstance(document["Age"], int):
        found.append(f"Age {document['Age']!r}")
    if document["Gender"] not in {"Male", "Female"}:
        found.append(f"Gender {document['Gender']!r}")
    if document["Annual_Premium"] < 0:
        found.append("negative Annual_Premium")
    if "Response" not in document:
        found.append("missing Response")
    if document["Vehicle_Age"] not in VALID_VEHICLE_AGES:
        found.append(f"Vehicle_Age {document['Vehicle_Age']!r}")
    return found


def test_malformed_documents_have_exactly_one_defect() -> None:
    documents = generate_documents(6_000, start=START, end=END, seed=5, malformed_share=0.2)
    defects = [defects_of(doc) for doc in documents]
    broken = [found for found in defects if found]
    assert abs(len(broken) / len(documents) - 0.2) <= 0.01
    assert all(len(found) == 1 for found in broken), [found for found in broken if len(found) > 1][:3]
    kinds = {found[0] for found in broken}
    assert kinds == {
        "missing Age",
        "Age 'unknown'",
        "Gender 'X'",
        "negative Annual_Premium",
        "missing Response",
        "Vehicle_Age '10+ Years'",
    }


def test_without_malformed_share_every_document_is_valid() -> None:
    documents = generate_documents(3_000, start=START, end=END, seed=5)
    assert not any(defects_of(doc) for doc in documents)
    assert all(len(doc) == len(FEATURES) + 2 for doc in documents)


def test_documents_hold_only_python_native_types() -> None:
    documents = generate_documents(2_000, start=START, end=END, seed=6, malformed_share=0.3)
    types_seen = {type(value) for doc in documents for value in doc.values()}
    assert types_seen == {int, float, str, datetime}
    assert not any(value is None for doc in documents for value in doc.values())


def test_frame_keeps_natural_dtypes_unless_malformed(customers: pd.DataFrame) -> None:
    assert customers["Response"].dtype == np.int64
    assert customers["Annual_Premium"].dtype == np.float64
    broken = generate_frame(2_000, start=START, end=END, seed=6, malformed_share=0.3)
    assert broken["Age"].dtype == object
    assert broken["Response"].dtype == object
    assert broken["Age"].isna().any()


# --- drift --------------------------------------------------------------------------------------------


def test_covariate_drift_moves_inputs_progressively() -> None:
    frames = {
        drift: generate_frame(10_000, start=START, end=END, seed=8, covariate_drift=drift) for drift in (0.0, 0.5, 1.0)
    }
    ages = {drift: frame["Age"].mean() for drift, frame in frames.items()}
    assert ages[0.0] + 4 < ages[0.5] < ages[1.0] - 4
    assert ages[1.0] - ages[0.0] > 10
    premiums = {drift: frame["Annual_Premium"].mean() for drift, frame in frames.items()}
    assert premiums[1.0] > 1.25 * premiums[0.0]
    old_cars = {drift: share(frame["Vehicle_Age"] == "> 2 Years") for drift, frame in frames.items()}
    assert old_cars[1.0] > old_cars[0.0] + 0.15


def test_concept_drift_changes_labels_only() -> None:
    before = generate_frame(3_000, start=START, end=END, seed=9)
    after = generate_frame(3_000, start=START, end=END, seed=9, concept_drift=1.0)
    pd.testing.assert_frame_equal(before.drop(columns="Response"), after.drop(columns="Response"))
    assert share(before["Response"] != after["Response"]) > 0.1
    assert 0.09 <= share(after["Response"] == 1) <= 0.16


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    features = frame[FEATURES].copy()
    features["Gender"] = (features["Gender"] == "Male").astype(int)
    features["Vehicle_Damage"] = (features["Vehicle_Damage"] == "Yes").astype(int)
    features["Vehicle_Age"] = features["Vehicle_Age"].map({"< 1 Year": 0, "1-2 Year": 1, "> 2 Years": 2})
    return features


def trained_forest(concept_drift: float, seed: int) -> RandomForestClassifier:
    train = generate_frame(8_000, start=START, end=END, seed=seed, concept_drift=concept_drift)
    forest = RandomForestClassifier(n_estimators=50, min_samples_leaf=5, random_state=0, n_jobs=1)
    return forest.fit(encode(train), train["Response"])


def roc_auc(forest: RandomForestClassifier, test: pd.DataFrame) -> float:
    return float(roc_auc_score(test["Response"], forest.predict_proba(encode(test))[:, 1]))


def test_concept_drift_hurts_a_model_of_the_old_concept() -> None:
    old_model, new_model = trained_forest(0.0, seed=10), trained_forest(1.0, seed=11)
    old_test = generate_frame(8_000, start=START, end=END, seed=12)
    new_test = generate_frame(8_000, start=START, end=END, seed=13, concept_drift=1.0)
    baseline = roc_auc(old_model, old_test)
    assert 0.78 <= baseline <= 0.90
    assert roc_auc(old_model, new_test) <= roc_auc(new_model, new_test) - 0.05
    assert roc_auc(old_model, new_test) <= baseline - 0.05


# --- argument validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rows": 0}, "rows must be a positive integer"),
        ({"rows": -5}, "rows must be a positive integer"),
        ({"rows": 2.5}, "rows must be a positive integer"),
        ({"end": START}, "start must be before end"),
        ({"end": START - timedelta(days=1)}, "start must be before end"),
        ({"start": "2024-01-01"}, "start must be a datetime"),
        ({"covariate_drift": 1.5}, "covariate_drift must be within"),
        ({"concept_drift": -0.1}, "concept_drift must be within"),
        ({"malformed_share": float("nan")}, "malformed_share must be within"),
    ],
)
def test_invalid_arguments_are_rejected(overrides: dict, message: str) -> None:
    arguments = {"rows": 10, "start": START, "end": END} | overrides
    with pytest.raises(ValueError, match=message):
        generate_documents(**arguments)


# --- CLI ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_mongo(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Stands in for include.retraining.adapters.mongo and records what the CLI sends."""
    state = types.SimpleNamespace(batches=[], targets=[], existing=0)

    def insert_documents(docs: list[dict], *, database: str, collection: str, conn_id: str) -> int:
        state.batches.append(docs)
        state.targets.append((database, collection, conn_id))
        return len(docs)

    def count_documents(*, database: str, collection: str, conn_id: str) -> int:
        return state.existing

    module = types.ModuleType("include.retraining.adapters.mongo")
    module.insert_documents = insert_documents
    module.count_documents = count_documents
    monkeypatch.setitem(sys.modules, "include.retraining.adapters.mongo", module)
    return state


def test_cli_seeds_in_batches(
    fake_mongo: types.SimpleNamespace, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEED_MONGO_CONN_ID", raising=False)
    argv = ["--rows", "120", "--days", "2", "--end", "2024-05-01T00:00:00Z", "--batch-size", "50"]
    argv += ["--database", "db", "--collection", "docs", "--seed", "4"]
    assert main(argv) == 0
    assert [len(batch) for batch in fake_mongo.batches] == [50, 50, 20]
    assert set(fake_mongo.targets) == {("db", "docs", "mongo_default")}
    end = datetime(2024, 5, 1, tzinfo=UTC)
    moments = [doc["ingested_at"] for batch in fake_mongo.batches for doc in batch]
    assert all(end - timedelta(days=2) <= moment < end for moment in moments)
    summary = capsys.readouterr().out.strip()
    assert summary.startswith("inserted 120 documents")
    assert "db.docs" in summary


def test_cli_defaults_to_environment_target(fake_mongo: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_DB", "envdb")
    monkeypatch.setenv("MONGO_COLLECTION", "envcoll")
    monkeypatch.setenv("SEED_MONGO_CONN_ID", "envconn")
    main(["--rows", "10", "--days", "1"])
    assert fake_mongo.targets == [("envdb", "envcoll", "envconn")]


def test_cli_if_empty_skips_a_filled_collection(
    fake_mongo: types.SimpleNamespace, capsys: pytest.CaptureFixture
) -> None:
    fake_mongo.existing = 7
    assert main(["--rows", "10", "--days", "1", "--if-empty"]) == 0
    assert fake_mongo.batches == []
    assert "skipped" in capsys.readouterr().out
    fake_mongo.existing = 0
    main(["--rows", "10", "--days", "1", "--if-empty"])
    assert len(fake_mongo.batches) == 1


@pytest.mark.parametrize(
    "bad",
    [["--malformed-share", "1.5"], ["--rows", "0"], ["--days", "-1"], ["--end", "yesterday"]],
)
def test_cli_rejects_bad_options(fake_mongo: types.SimpleNamespace, bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--rows", "10", "--days", "1", *bad])
    assert exit_info.value.code == 2
    assert fake_mongo.batches == []
