"""Performance estimation before labels: close to the realised metric on clean data, bands that cover it at
their level, covariate shift seen, pure concept drift not seen (the documented limit), files, and a
classifier without probabilities. A regressor and a classifier are built here from scikit-learn data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification, make_friedman1
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, recall_score

from monitoring_core.description import parse_description
from monitoring_core.estimation import (
    LEVEL,
    NO_PROBABILITIES,
    EstimatorError,
    PerformanceEstimator,
    estimator_path,
    fit_estimator,
    load_estimator,
    prepare_estimator,
)
from monitoring_core.model_folder import load_model_folder

REGRESSOR = {
    "name": "friedman",
    "task": "regression",
    "target": {"name": "y"},
    "features": [
        *({"name": f"x{i}", "kind": "numerical"} for i in range(5)),
        {"name": "region", "kind": "categorical", "type": "int"},
        {"name": "seen_at", "kind": "datetime", "required": False},
    ],
}
CLASSES = ("0", "1", "2")
CLASSIFIER = {
    "name": "blobs",
    "task": "classification",
    "classes": list(CLASSES),
    "target": {"name": "label"},
    "prediction": {"probabilities": {c: f"proba_{c}" for c in CLASSES}},
    "features": [{"name": f"f{i}", "kind": "numerical"} for i in range(6)],
}


# -- a regressor whose errors grow with x0 (noise and a linear fit of a non-linear rule) -----------------------
def _regression_rows(n: int, seed: int, concept_drift: bool = False) -> pd.DataFrame:
    x, y = make_friedman1(n_samples=n, n_features=5, noise=0.0, random_state=seed)
    rng = np.random.default_rng(seed)
    y = y + rng.normal(0.0, 0.5 + 3.0 * x[:, 0])
    if concept_drift:  # the same inputs, another rule
        y = y + 4.0 * x[:, 1]
    frame = pd.DataFrame({f"x{i}": x[:, i] for i in range(5)})
    frame["region"] = (x[:, 2] * 4).astype(int) + 1
    frame["seen_at"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s")
    frame["y"] = y
    return frame


@pytest.fixture(scope="module")
def regressor():
    train = _regression_rows(3000, seed=1)
    model = LinearRegression().fit(train[[f"x{i}" for i in range(5)]], train["y"])

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(prediction=model.predict(frame[[f"x{i}" for i in range(5)]]))

    description = parse_description(REGRESSOR)
    reference = predict(_regression_rows(3000, seed=2))
    return description, reference, predict, fit_estimator(description, reference, seed=0)


def _realised_regression(window: pd.DataFrame) -> dict[str, float]:
    error = window["y"] - window["prediction"]
    return {"mae": float(error.abs().mean()), "rmse": float(np.sqrt((error**2).mean()))}


# -- a three-class classifier whose probabilities come from a logistic regression ------------------------------
def _classification_rows(n: int) -> pd.DataFrame:
    x, y = make_classification(
        n_samples=n, n_features=6, n_informative=4, n_classes=3, n_clusters_per_class=2, flip_y=0.05, random_state=7
    )
    frame = pd.DataFrame({f"f{i}": x[:, i] for i in range(6)})
    frame["label"] = y.astype(str)
    return frame


@pytest.fixture(scope="module")
def classifier():
    pool = _classification_rows(20_000)  # shuffled rows of one problem: train, reference, held-out windows
    train, rest = pool.iloc[:6000], pool.iloc[6000:].reset_index(drop=True)
    features = [f"f{i}" for i in range(6)]
    model = LogisticRegression(max_iter=500).fit(train[features], train["label"])

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        proba = model.predict_proba(frame[features])
        out = frame.assign(**{f"proba_{c}": proba[:, i] for i, c in enumerate(model.classes_)})
        return out.assign(prediction=model.classes_[proba.argmax(axis=1)])

    description = parse_description(CLASSIFIER)
    reference = predict(rest.iloc[:4000])
    return description, predict(rest.iloc[4000:].reset_index(drop=True)), fit_estimator(description, reference, seed=0)


def _realised_classification(window: pd.DataFrame) -> dict[str, float]:
    truth, predicted = window["label"], window["prediction"]
    return {
        "accuracy": accuracy_score(truth, predicted),
        "f1_macro": f1_score(truth, predicted, average="macro", labels=list(CLASSES)),
    }


# -- close to the realised metric on clean held-out data -------------------------------------------------------
def test_regression_estimate_is_close_to_realised_on_clean_data(regressor) -> None:
    _, _, predict, estimator = regressor
    window = predict(_regression_rows(2000, seed=3))
    estimate, realised = estimator.estimate(window.drop(columns="y")), _realised_regression(window)
    assert estimate.rows == 2000 and estimate.level == LEVEL and set(estimate.metrics) == {"mae", "rmse"}
    for metric, value in realised.items():
        band = estimate.metrics[metric]
        assert band.low < band.value < band.high
        # Within the band's full width of the estimate: about 3.3 standard errors.
        assert abs(band.value - value) <= band.high - band.low, (metric, band, value)


def test_classification_estimate_is_close_to_realised_on_clean_data(classifier) -> None:
    _, held_out, estimator = classifier
    window = held_out.iloc[:2000]
    estimate, realised = estimator.estimate(window.drop(columns="label")), _realised_classification(window)
    assert {"accuracy", "f1_macro", "precision_macro", "recall_macro"} <= set(estimate.metrics)
    for metric, value in realised.items():
        band = estimate.metrics[metric]
        assert abs(band.value - value) <= band.high - band.low, (metric, band, value)
    # Per class recall, as the confusion matrix's rows give it.
    recalls = recall_score(window["label"], window["prediction"], average=None, labels=list(CLASSES))
    for c, value in zip(CLASSES, recalls, strict=True):
        band = estimate.classes[c]["recall"]
        assert abs(band.value - value) <= band.high - band.low, (c, band, value)


# -- the band covers the realised metric at its level -----------------------------------------------------------
def test_regression_band_covers_realised_metric_near_its_level(regressor) -> None:
    _, _, predict, estimator = regressor
    hits = {"mae": [], "rmse": []}
    for seed in range(100, 160):
        window = predict(_regression_rows(200, seed=seed))
        estimate, realised = estimator.estimate(window), _realised_regression(window)
        for metric, value in realised.items():
            hits[metric].append(estimate.metrics[metric].low <= value <= estimate.metrics[metric].high)
    for metric, covered in hits.items():
        # 60 windows at 90%: 3 binomial standard deviations either side is [0.78, 1.0].
        assert 0.78 <= np.mean(covered) <= 1.0, (metric, np.mean(covered))


def test_classification_band_covers_realised_metric_near_its_level(classifier) -> None:
    _, held_out, estimator = classifier
    hits = {"accuracy": [], "f1_macro": []}
    for start in range(0, 10_000, 200):
        window = held_out.iloc[start : start + 200]
        estimate, realised = estimator.estimate(window), _realised_classification(window)
        for metric, value in realised.items():
            hits[metric].append(estimate.metrics[metric].low <= value <= estimate.metrics[metric].high)
    for metric, covered in hits.items():
        assert 0.77 <= np.mean(covered) <= 1.0, (metric, np.mean(covered))  # 50 windows: 3 standard deviations


# -- what a shift does to the estimate, before any label -------------------------------------------------------
def test_covariate_shift_moves_the_estimate_before_any_label(regressor) -> None:
    _, _, predict, estimator = regressor
    pool = predict(_regression_rows(8000, seed=4))
    clean = pool.iloc[:1000]
    shifted = pool[pool["x0"] > 0.6].iloc[:1000]  # rows where the noise is larger
    unlabelled = estimator.estimate(shifted.drop(columns="y"))
    baseline = estimator.estimate(clean.drop(columns="y"))
    assert unlabelled.metrics["mae"].value > baseline.metrics["mae"].high
    assert unlabelled.metrics["rmse"].value > baseline.metrics["rmse"].high
    # ...and the labels, when they come, agree on the direction.
    assert _realised_regression(shifted)["mae"] > _realised_regression(clean)["mae"]


def test_pure_concept_drift_leaves_the_estimate_unchanged(regressor) -> None:
    # The documented limit: the same inputs with another rule give the same estimate; only the labels show it.
    _, _, predict, estimator = regressor
    clean, drifted = (
        predict(_regression_rows(1000, seed=5)),
        predict(_regression_rows(1000, seed=5, concept_drift=True)),
    )
    assert estimator.estimate(drifted).metrics == estimator.estimate(clean).metrics
    # The gap between realised and estimated on the same labelled rows is the concept-drift hint.
    gaps = estimator.estimate(drifted).gaps(_realised_regression(drifted))
    assert gaps["mae"].outside_band and gaps["mae"].value > 0 and gaps["rmse"].outside_band
    assert not any(g.outside_band for g in estimator.estimate(clean).gaps(_realised_regression(clean)).values())


# -- windows as the services hold them -------------------------------------------------------------------------
def test_window_formats_give_the_same_estimate(regressor) -> None:
    # The metrics service keeps datetimes as epoch seconds and may hold categories as text.
    _, _, predict, estimator = regressor
    window = predict(_regression_rows(500, seed=6))
    served = window.assign(
        seen_at=window["seen_at"].astype("int64") / 1e9,
        region=window["region"].astype(float).astype(str).str.replace(".0", "", regex=False),
    )
    assert estimator.estimate(served).metrics == estimator.estimate(window).metrics
    missing = window.assign(seen_at=pd.NaT, region=99)  # optional time absent, an unseen category
    assert set(estimator.estimate(missing).metrics) == {"mae", "rmse"}


def test_empty_window_says_so(regressor) -> None:
    _, reference, _, estimator = regressor
    estimate = estimator.estimate(reference.iloc[:0])
    assert estimate.rows == 0 and estimate.metrics == {} and estimate.reason


# -- files -------------------------------------------------------------------------------------------------
def test_round_trip_through_a_model_folder(tmp_path, regressor) -> None:
    description, reference, predict, _ = regressor
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(REGRESSOR))
    reference.to_parquet(tmp_path / "reference.parquet")
    folder = load_model_folder(tmp_path)
    fitted = prepare_estimator(folder, seed=0)
    assert estimator_path(folder) == tmp_path / "prepared" / "estimator.joblib"
    loaded = load_estimator(folder)
    window = predict(_regression_rows(300, seed=8))
    assert loaded.estimate(window) == fitted.estimate(window)
    assert loaded.content_hash == folder.content_hash()
    # A changed reference makes the file stale: refused, not silently used.
    reference.iloc[:-1].to_parquet(tmp_path / "reference.parquet")
    with pytest.raises(EstimatorError, match="prepare"):
        load_estimator(folder)


def test_missing_or_foreign_file_is_refused(tmp_path) -> None:
    with pytest.raises(EstimatorError, match="no performance estimator"):
        PerformanceEstimator.from_file(tmp_path / "estimator.joblib")
    (tmp_path / "estimator.joblib").write_bytes(b"not a pickle")
    with pytest.raises(EstimatorError, match="unreadable"):
        PerformanceEstimator.from_file(tmp_path / "estimator.joblib")


# -- a classifier without probabilities -----------------------------------------------------------------------
def test_classifier_without_probabilities_says_so(tmp_path, classifier) -> None:
    description = parse_description({**CLASSIFIER, "prediction": {"name": "prediction"}})
    _, held_out, _ = classifier
    estimator = fit_estimator(description, held_out.drop(columns=[f"proba_{c}" for c in CLASSES]))
    assert estimator.reason == NO_PROBABILITIES == "no estimate: the model gives no probabilities"
    estimate = estimator.estimate(held_out.iloc[:100])
    assert estimate.metrics == {} and estimate.reason == NO_PROBABILITIES
    estimator.to_file(tmp_path / "estimator.joblib")
    assert PerformanceEstimator.from_file(tmp_path / "estimator.joblib").reason == NO_PROBABILITIES


def test_binary_classifier_giving_one_probability_column() -> None:
    # A binary model often logs only the positive class's probability: the other is its complement.
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    x, y = data.data.iloc[:, :5].set_axis([f"c{i}" for i in range(5)], axis=1), data.target
    model = LogisticRegression(max_iter=2000).fit(x[:250], y[:250])
    reference = x[250:].assign(label=y[250:], p1=model.predict_proba(x[250:])[:, 1])
    reference["prediction"] = (reference["p1"] > 0.5).astype(int)
    description = parse_description(
        {
            "name": "cancer",
            "task": "classification",
            "classes": [0, 1],
            "target": {"name": "label"},
            "prediction": {"probabilities": {"1": "p1"}},
            "features": [{"name": f"c{i}", "kind": "numerical"} for i in range(5)],
        }
    )
    estimate = fit_estimator(description, reference).estimate(reference.drop(columns="label"))
    realised = accuracy_score(reference["label"], reference["prediction"])
    band = estimate.metrics["accuracy"]
    assert estimate.rows == len(reference) and band.low <= realised <= band.high
    assert set(estimate.classes) == {"0", "1"} and set(estimate.classes["1"]) == {"precision", "recall", "f1"}


def test_a_classifier_giving_every_probability_but_one_is_estimated_and_two_missing_say_so(classifier) -> None:
    # Hostile probe: a 3-class reference logging 2 probability columns. The third is their complement.
    description, held_out, full = classifier
    two = parse_description({**CLASSIFIER, "prediction": {"probabilities": {"0": "proba_0", "1": "proba_1"}}})
    estimator = fit_estimator(two, held_out.iloc[:1000].drop(columns="proba_2"))
    assert estimator.reason is None
    window = held_out.iloc[1000:1500]
    partial = estimator.estimate(window.drop(columns=["label", "proba_2"])).metrics["accuracy"]
    assert partial.value == pytest.approx(
        full.estimate(window.drop(columns="label")).metrics["accuracy"].value, abs=0.02
    )
    one = parse_description({**CLASSIFIER, "prediction": {"probabilities": {"0": "proba_0"}}})
    reason = fit_estimator(one, held_out.iloc[:1000]).reason
    assert reason == "no estimate: prediction.probabilities lacks the classes ['1', '2'] (at most one may be left out)"


def test_prepare_writes_the_reason_for_a_reference_too_small(tmp_path) -> None:
    # Written, not skipped: the services then say why ("30 labelled rows") instead of "run the prepare command".
    from monitoring_core.estimation import load_estimator, prepare_estimator

    folder_path = tmp_path / "tiny"
    folder_path.mkdir()
    (folder_path / "model.yaml").write_text(yaml.safe_dump(REGRESSOR))
    _regression_rows(30, seed=1).assign(prediction=1.0).to_parquet(folder_path / "reference.parquet", index=False)
    folder = load_model_folder(folder_path)
    assert prepare_estimator(folder).reason == "no estimate: the reference has 30 labelled rows; at least 200"
    assert load_estimator(folder).reason == "no estimate: the reference has 30 labelled rows; at least 200"


def test_a_feature_the_reference_never_holds_is_left_out_and_a_perfect_reference_says_why(regressor) -> None:
    description, reference, _, served = regressor
    # An optional feature nobody ever sent: every value missing. It was a scikit-learn binning error.
    empty = reference.assign(x4=np.nan, seen_at=pd.NaT, region=np.nan)
    estimator = fit_estimator(description, empty, seed=0)
    window = empty.sample(500, random_state=3)
    assert estimator.reason is None and estimator.estimate(window).metrics["mae"].value == pytest.approx(
        np.abs(window["y"] - window["prediction"]).mean(), rel=0.2
    )
    # Predictions equal to the target on every row (a reference scored on the training rows of a model that
    # memorised them): nothing to learn the error from. Was "loss='poisson' requires ... sum(y) > 0".
    with pytest.raises(ValueError, match=r"predictions equal its target on every row.*trained on"):
        fit_estimator(description, reference.assign(prediction=reference["y"]), seed=0)


# -- a many-valued category beside the number that drives the error ---------------------------------------------
ZONED = {
    "name": "zoned",
    "task": "regression",
    "target": {"name": "y"},
    "features": [
        {"name": "zone", "kind": "categorical", "type": "int"},
        {"name": "distance", "kind": "numerical"},
    ],
}


def _zoned_rows(n: int, seed: int, rng_rows: np.random.Generator | None = None) -> pd.DataFrame:
    """Rows of 200 zones, each with its own typical distance; the error's scale grows with the distance."""
    zone_level = np.random.default_rng(0).uniform(1.0, 6.0, 200)  # fixed per zone, whatever the seed
    rng = np.random.default_rng(seed)
    zone = rng.integers(0, 200, n)
    distance = zone_level[zone] * rng.lognormal(0.0, 0.35, n)
    prediction = 3.0 + 4.0 * distance
    y = prediction + rng.normal(0.0, 0.4 * distance)
    return pd.DataFrame({"zone": zone + 1, "distance": distance, "prediction": prediction, "y": y})


def test_a_within_category_shift_of_the_number_that_drives_the_error_moves_the_estimate() -> None:
    # Each of 200 zones has its typical distance; the error grows with the distance. A window of each zone's
    # longer rides (the zones as often as in the reference) has larger errors: the estimate must follow. Fitted
    # beside the numbers, the zones' effects soaked up part of the distance's, which then did not move.
    description = parse_description(ZONED)
    estimator = fit_estimator(description, _zoned_rows(4000, seed=1), seed=0)
    pool = _zoned_rows(40_000, seed=2)
    typical = np.random.default_rng(0).uniform(1.0, 6.0, 200)[pool["zone"] - 1]
    longer = pool[pool["distance"] > 1.3 * typical].iloc[:2000]
    clean = pool.iloc[:2000]
    for window in (clean, longer):
        realised = float((window["y"] - window["prediction"]).abs().mean())
        estimated = estimator.estimate(window.drop(columns="y")).metrics["mae"].value
        assert abs(estimated - realised) / realised < 0.03, (estimated, realised)  # it was 4-8% under
