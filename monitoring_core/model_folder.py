"""A model folder (`models/<name>/`): the description, the model, the reference, and what `prepare` derives.

    models/<name>/
      model.yaml          the description (monitoring_core/description.py), written by the user
      model.pkl | MLmodel the model: a scikit-learn estimator/pipeline pickle, the course's
                          (DictVectorizer, model) pickle, or an MLflow model folder (`model/`)
      reference.parquet   features, target, prediction (and class probabilities) of reference rows
      prepared/           written by `python -m monitoring_core.prepare`: drift calibration, estimators,
                          with the content hash of the description and reference they were derived from

The prediction service serves one folder (`MODEL_DIR`); the metrics service and the batch flow
monitor every folder of `MODELS_DIR`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from monitoring_core.description import DescriptionError, ModelDescription, parse_description
from monitoring_core.reference import read_reference

DESCRIPTION_FILE = "model.yaml"
PREPARED_DIR = "prepared"
# Model files looked for, in this order, when the description names none.
MODEL_CANDIDATES = ("model", "model.pkl", "model.bin", "model.joblib", "model.pickle")
MLMODEL_FILE = "MLmodel"


def read_description(path: Path) -> ModelDescription:
    """Read and validate a `model.yaml`; DescriptionError (one line naming the file and key) when bad."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DescriptionError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise DescriptionError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict):
        raise DescriptionError(f"{path}: (top level): expected a mapping of keys, got {type(raw).__name__}")
    return parse_description(raw, str(path))


@dataclass(frozen=True)
class ModelFolder:
    """One model's folder and its validated description."""

    path: Path
    description: ModelDescription = field(compare=False)

    @property
    def name(self) -> str:
        """Return the model's name (the description's `name`)."""
        return self.description.name

    @property
    def reference_path(self) -> Path:
        """Return the reference parquet file."""
        return self.path / self.description.reference

    @property
    def prepared_dir(self) -> Path:
        """Return the folder `prepare` writes derived artifacts into."""
        return self.path / PREPARED_DIR

    @property
    def calibration_path(self) -> Path:
        """Return the drift calibration file `prepare` writes (and the services read)."""
        return self.prepared_dir / "calibration.json"

    @property
    def model_path(self) -> Path | None:
        """Return the model file or MLflow folder: the one the description names, else the first found."""
        if self.description.model is not None:
            return self.path / self.description.model
        for candidate in MODEL_CANDIDATES:
            path = self.path / candidate
            if path.is_file() or (path / MLMODEL_FILE).is_file():
                return path
        if (self.path / MLMODEL_FILE).is_file():
            return self.path
        return None

    def content_hash(self) -> str:
        """Return a hash of the description and the reference bytes: what prepared artifacts were derived from."""
        digest = hashlib.sha256((self.path / DESCRIPTION_FILE).read_bytes())
        with open(self.reference_path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()[:16]


def load_model_folder(path: Path | str) -> ModelFolder:
    """Return the folder at `path` with its description; DescriptionError when it has none or a bad one."""
    path = Path(path)
    description_path = path / DESCRIPTION_FILE
    if not description_path.is_file():
        raise DescriptionError(f"{path}: no {DESCRIPTION_FILE} (a model folder holds its description)")
    return ModelFolder(path=path, description=read_description(description_path))


def discover_models(models_dir: Path | str) -> dict[str, ModelFolder]:
    """Return every model folder under `models_dir` (subfolders holding a model.yaml), by model name."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise DescriptionError(f"{models_dir}: no such models folder")
    if (models_dir / DESCRIPTION_FILE).is_file():  # a single model folder given where a folder of them was expected
        folder = load_model_folder(models_dir)
        return {folder.name: folder}
    found: dict[str, ModelFolder] = {}
    for sub in sorted(p for p in models_dir.iterdir() if p.is_dir() and (p / DESCRIPTION_FILE).is_file()):
        folder = load_model_folder(sub)
        if folder.name in found:
            raise DescriptionError(f"{sub}: name {folder.name!r} is also the name of {found[folder.name].path}")
        found[folder.name] = folder
    if not found:
        raise DescriptionError(f"{models_dir}: no model folder (a subfolder with a {DESCRIPTION_FILE})")
    return found


def main(argv: list[str] | None = None) -> int:
    """`check DIR...`: validate model folders (one line each); `schema`: print the description's JSON Schema."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m monitoring_core.model_folder", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate model folders' descriptions (and their references, when present)")
    check.add_argument("folders", nargs="+", type=Path)
    sub.add_parser("schema", help="print the JSON Schema of model.yaml")
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(ModelDescription.model_json_schema(), indent=2, sort_keys=True))
        return 0
    status = 0
    for path in args.folders:
        try:
            folder = load_model_folder(path)
        except DescriptionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        d = folder.description
        line = f"{path}: {d.name}: {d.task.value}, {len(d.features)} features, target {d.target.name}"
        problem = _reference_problem(folder)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            status = 2
            continue
        reference = "no reference yet" if not folder.reference_path.is_file() else "the reference fits"
        print(f"{line}; {reference}")
    return status


def _reference_problem(folder: ModelFolder) -> str | None:
    """Return why the folder's reference does not fit its description (None: it fits, or there is none yet)."""
    if not folder.reference_path.is_file():
        return None

    from monitoring_core.reference_check import check_reference

    try:
        check_reference(folder.description, read_reference(folder.reference_path), str(folder.reference_path))
    except DescriptionError as exc:
        return str(exc)
    except (OSError, ValueError) as exc:  # not a parquet file, unreadable
        return f"{folder.reference_path}: cannot read the reference ({exc})"
    return None


if __name__ == "__main__":
    raise SystemExit(main())
