"""The course's `lin_reg.bin` as a model the service serves with the course's own features.

The course pickles `(DictVectorizer, LinearRegression)` fitted on `PU_DO` ("<PULocationID>_<DOLocationID>")
and `trip_distance`. The service serves such a tuple as it is, with the described features only (so
`PU_DO`, which is no taxi feature, never reaches it). Wrapped here, the taxi's own code builds `PU_DO`:

`python -m ride_duration.course lin_reg.bin models/ride_duration/model.pkl`
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ride_duration.features import baseline_features, frame_features
from ride_duration.schema import MIN_DURATION_MINUTES


@dataclass
class CourseRideModel:
    """The course's vectorizer and regressor, fed the course's features built from the taxi's."""

    vectorizer: Any
    estimator: Any
    version: str

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predict the minutes of every ride of a frame of the described features (at least 1 minute)."""
        minutes = self.estimator.predict(self.vectorizer.transform(frame_features(frame, baseline_features)))
        return np.maximum(np.asarray(minutes, dtype=float), MIN_DURATION_MINUTES)


def wrap(path: Path) -> CourseRideModel:
    """Return the course's pickle at `path` wrapped; its version is a hash of the file."""
    data = path.read_bytes()
    vectorizer, estimator = pickle.loads(data)  # noqa: S301 - the operator's own file
    return CourseRideModel(vectorizer, estimator, f"course-{hashlib.sha256(data).hexdigest()[:12]}")


def main(argv: list[str] | None = None) -> int:
    """Wrap a course pickle and write it where the service finds it."""
    parser = argparse.ArgumentParser(description="Wrap the course's lin_reg.bin for the prediction service.")
    parser.add_argument("course_pickle", type=Path, help="the course's (DictVectorizer, model) pickle")
    parser.add_argument("out", type=Path, help="where to write the wrapped model (e.g. models/ride_duration/model.pkl)")
    args = parser.parse_args(argv)
    try:
        model = wrap(args.course_pickle)
    except (OSError, ValueError, pickle.UnpicklingError, TypeError) as exc:
        print(f"error: cannot read {args.course_pickle}: {exc}", file=sys.stderr)
        return 1
    args.out.write_bytes(pickle.dumps(model, protocol=5))
    print(f"wrote {args.out} (version {model.version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
