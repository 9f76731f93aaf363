"""Data for the drift power bench and tests: a classifier built from scikit-learn's wine data, and the shift families.

`wine_model()` writes nothing: it returns the model's description (as a `model.yaml` would give it)
and a sampler of clean rows. The 178 wine rows are resampled with a Gaussian jitter (0.25 std per
feature), so samples of any size come from one continuous distribution with the data's correlations
(flavanoids and total phenols: +0.86); `color_band` is the colour intensity in six bands (a
categorical feature), the prediction a logistic regression's class.

The shift families act on a frame and return a shifted copy; each names the columns it moves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import yaml

from monitoring_core.description import ModelDescription, parse_description

WINE_YAML = """
name: wine
task: classification
classes: [class_0, class_1, class_2]
target: {name: cultivar}
features:
  - {name: alcohol, kind: numerical}
  - {name: malic_acid, kind: numerical}
  - {name: flavanoids, kind: numerical}
  - {name: total_phenols, kind: numerical}
  - {name: proline, kind: numerical}
  - {name: color_band, kind: categorical, type: str}
segments:
  - name: band_group
    column: color_band
    map: {pale: light, light: light, medium: light, deep: dark, dark: dark, black: dark}
"""
BANDS = ("pale", "light", "medium", "deep", "dark", "black")
NUMERICAL = ("alcohol", "malic_acid", "flavanoids", "total_phenols", "proline")


Sampler = Callable[[int, int], pd.DataFrame]
Predictor = Callable[[pd.DataFrame], pd.DataFrame]


def wine_model() -> tuple[ModelDescription, Sampler, Predictor]:
    """Return (description, sample(rows, seed), predict(frame) -> frame with its prediction) for the wine model."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    description = parse_description(yaml.safe_load(WINE_YAML))
    data = load_wine(as_frame=True)
    base = data.frame.rename(columns={"od280/od315_of_diluted_wines": "od280"})
    columns = [*NUMERICAL, "color_intensity"]
    stds = base[columns].std()
    edges = np.quantile(base["color_intensity"], np.linspace(0, 1, len(BANDS) + 1)[1:-1])
    model = LogisticRegression(max_iter=2_000).fit(
        (base[list(NUMERICAL)] - base[list(NUMERICAL)].mean()) / stds[list(NUMERICAL)], base["target"]
    )
    means = base[list(NUMERICAL)].mean()

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        classes = model.predict((frame[list(NUMERICAL)] - means) / stds[list(NUMERICAL)])
        frame["prediction"] = [f"class_{c}" for c in classes]
        return frame

    def sample(rows: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        picked = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
        frame = picked[columns] + rng.standard_normal((rows, len(columns))) * (0.25 * stds.to_numpy())
        frame["color_band"] = np.asarray(BANDS, dtype=object)[np.searchsorted(edges, frame["color_intensity"])]
        frame = predict(frame.drop(columns=["color_intensity"]))
        frame["cultivar"] = [f"class_{c}" for c in picked["target"]]
        return frame

    return description, sample, predict


def scale(frame: pd.DataFrame, column: str, factor: float) -> pd.DataFrame:
    """Multiply a numerical column by `factor` (a unit or pricing change)."""
    out = frame.copy()
    out[column] = out[column] * factor
    return out


def spread(frame: pd.DataFrame, column: str, factor: float, center: float) -> pd.DataFrame:
    """Widen a numerical column's spread around `center` (the reference's median) by `factor`.

    Values are kept at or above the column's smallest (a distance or a count cannot turn negative).
    """
    out = frame.copy()
    out[column] = (center + (out[column] - center) * factor).clip(lower=out[column].min())
    return out


def mix(frame: pd.DataFrame, column: str, share: float, busiest: list, seed: int) -> pd.DataFrame:
    """Move `share` of the rows, taken outside the `busiest` known values, onto them: that share of rows moved."""
    out = frame.copy()
    rng = np.random.default_rng(seed)
    outside = np.flatnonzero(~out[column].isin(busiest).to_numpy())
    moved = rng.choice(outside, min(len(outside), round(share * len(out))), replace=False)
    values = np.asarray(busiest, dtype=object)[rng.integers(0, len(busiest), len(moved))]
    out[column] = out[column].astype(object)
    out.loc[moved, column] = values
    return out


def unseen(frame: pd.DataFrame, column: str, share: float, seed: int) -> pd.DataFrame:
    """Give `share` of the rows values the reference never had."""
    out = frame.copy()
    rng = np.random.default_rng(seed)
    moved = rng.random(len(out)) < share
    out[column] = out[column].astype(object)
    out.loc[moved, column] = [f"unseen-{k}" for k in rng.integers(0, 5, int(moved.sum()))]
    return out


def shuffle_column(frame: pd.DataFrame, column: str, seed: int) -> pd.DataFrame:
    """Permute one column across rows: its marginal (the same values) and every other stay, its links to them go."""
    out = frame.copy()
    out[column] = np.random.default_rng(seed).permutation(out[column].to_numpy())
    return out


def flip_correlation(frame: pd.DataFrame, first: str, second: str, seed: int) -> pd.DataFrame:
    """Break the joint distribution of two columns, keeping each marginal exactly.

    `second` is re-paired through ranks: the row with the k-th smallest `first` gets the k-th largest
    `second`, so every marginal is unchanged (the same values) and their correlation turns negative.
    """
    out = frame.copy()
    order = np.argsort(out[first].to_numpy(), kind="stable")
    values = np.sort(out[second].to_numpy())[::-1]
    paired = np.empty(len(out))
    paired[order] = values
    out[second] = paired
    return out
