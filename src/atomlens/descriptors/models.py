"""Random forest and XGBoost on feature tables: CV, uncertainty, importances, saved models.

Settings follow the paper (100 trees; XGBoost depth 4, learning rate 0.1, alpha 0.8).
Cross-validation is grouped by composition by default: the paper's random row split puts
the same composition (at another temperature) in training and test, which flatters scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from atomlens.descriptors.table import Table
from atomlens.errors import DataError
from atomlens.files import atomic_path, write_json_atomic
from atomlens.training.metrics import regression_metrics

ModelKind = Literal["rf", "xgboost"]
BOOTSTRAP_MODELS = 10


def make_model(kind: ModelKind, seed: int = 62, n_jobs: int = 2) -> Any:
    """An unfitted regressor with the paper's settings."""
    if kind == "rf":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=n_jobs)
    if kind == "xgboost":
        from xgboost import XGBRegressor

        return XGBRegressor(
            n_estimators=100,
            max_depth=4,
            learning_rate=0.1,
            reg_alpha=0.8,
            random_state=seed,
            n_jobs=n_jobs,
        )
    raise DataError(f"unknown model {kind!r}; use rf or xgboost")


class Ensemble:
    """A fitted model plus its uncertainty: tree spread (RF) or bootstrap spread (XGBoost)."""

    def __init__(self, kind: ModelKind, seed: int = 62, n_jobs: int = 2):
        self.kind, self.seed, self.n_jobs = kind, seed, n_jobs
        self.model = make_model(kind, seed, n_jobs)
        self.bootstrap: list[Any] = []

    def fit(self, x: np.ndarray, y: np.ndarray) -> Ensemble:
        """Fit the model (and, for XGBoost, bootstrap replicas for the uncertainty)."""
        self.model.fit(x, y)
        if self.kind == "rf":
            # Predicting a table is fast; joblib's per-call overhead is not (permutation
            # importance predicts hundreds of times).
            self.model.set_params(n_jobs=1)
        if self.kind == "xgboost":
            rng = np.random.default_rng(self.seed)
            self.bootstrap = []
            for k in range(BOOTSTRAP_MODELS):
                rows = rng.integers(0, len(y), len(y))
                replica = make_model("xgboost", self.seed + k + 1, self.n_jobs)
                self.bootstrap.append(replica.fit(x[rows], y[rows]))
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean prediction and its standard deviation per row."""
        mean = np.asarray(self.model.predict(x), dtype=np.float64)
        if self.kind == "rf":
            trees = np.stack([tree.predict(x) for tree in self.model.estimators_])
            return mean, trees.std(axis=0)
        replicas = np.stack([m.predict(x) for m in self.bootstrap])
        return mean, replicas.std(axis=0)


@dataclass
class CVReport:
    """Cross-validated scores of one model on one table."""

    kind: str
    scheme: str
    folds: list[dict[str, float]]
    predicted: np.ndarray
    uncertainty: np.ndarray
    tested: np.ndarray
    impurity_importance: np.ndarray
    permutation_importance: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Mean and standard deviation of each score over folds."""
        out: dict[str, Any] = {
            "model": self.kind,
            "scheme": self.scheme,
            "n_folds": len(self.folds),
        }
        for key in ("r2", "mae", "rmse"):
            values = np.array([f[key] for f in self.folds])
            out[key] = float(values.mean())
            out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        return out | self.extra


def cross_validate(
    table: Table,
    kind: ModelKind,
    folds: list[tuple[np.ndarray, np.ndarray]],
    scheme: str,
    *,
    seed: int = 62,
    permutation_repeats: int = 5,
    progress: bool = True,
) -> CVReport:
    """Fit on each fold's training rows; score, spread and importances on its test rows."""
    import warnings

    from sklearn.inspection import permutation_importance
    from tqdm.auto import tqdm

    # joblib inside scikit-learn warns about its own config propagation; not actionable here
    warnings.filterwarnings("ignore", message=".*sklearn.utils.parallel.delayed.*")

    predicted = np.full(len(table.y), np.nan)
    spread = np.full(len(table.y), np.nan)
    scores, impurity, permutation = [], [], []
    for train, test in tqdm(folds, desc=f"{kind} {scheme}", disable=not progress):
        ensemble = Ensemble(kind, seed).fit(table.x[train], table.y[train])
        mean, std = ensemble.predict(table.x[test])
        predicted[test], spread[test] = mean, std
        scores.append(regression_metrics(table.y[test], mean))
        impurity.append(ensemble.model.feature_importances_)
        result = permutation_importance(
            ensemble.model,
            table.x[test],
            table.y[test],
            n_repeats=permutation_repeats,
            random_state=seed,
            scoring="neg_mean_squared_error",
        )
        permutation.append(result.importances_mean)
    tested = np.isfinite(predicted)
    return CVReport(
        kind,
        scheme,
        scores,
        predicted,
        spread,
        tested,
        np.mean(impurity, axis=0),
        np.mean(permutation, axis=0),
    )


def save_model(ensemble: Ensemble, table: Table, out_dir: Path) -> Path:
    """Write the fitted model (skops for RF, XGBoost JSON) and its metadata."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if ensemble.kind == "rf":
        import skops.io

        with atomic_path(out_dir / "model.skops") as tmp:
            skops.io.dump(ensemble.model, tmp)
    else:
        for k, model in enumerate([ensemble.model, *ensemble.bootstrap]):
            with atomic_path(out_dir / f"model_{k}.json") as tmp:
                model.save_model(tmp)
    meta = {
        "kind": ensemble.kind,
        "seed": ensemble.seed,
        "target": table.target,
        "features": table.feature_names,
        "bootstrap_models": len(ensemble.bootstrap),
        "table": str(table.path),
    }
    write_json_atomic(out_dir / "model.json", meta)
    return out_dir


def load_model(model_dir: Path) -> tuple[Ensemble, dict[str, Any]]:
    """Read a model written by :func:`save_model` (no pickle: skops with a type allow-list)."""
    meta_file = model_dir / "model.json"
    if not meta_file.is_file():
        raise DataError(f"'{model_dir}' is not a saved table model (model.json missing)")
    meta = json.loads(meta_file.read_text())
    ensemble = Ensemble(meta["kind"], meta["seed"])
    if meta["kind"] == "rf":
        import skops.io

        path = model_dir / "model.skops"
        untrusted = skops.io.get_untrusted_types(file=path)
        allowed = [t for t in untrusted if t.startswith("sklearn.")]
        if set(untrusted) - set(allowed):
            raise DataError(
                f"'{path}' holds unexpected types: {sorted(set(untrusted) - set(allowed))}"
            )
        ensemble.model = skops.io.load(path, trusted=allowed)
    else:
        from xgboost import XGBRegressor

        models = []
        for k in range(meta["bootstrap_models"] + 1):
            model = XGBRegressor()
            model.load_model(model_dir / f"model_{k}.json")
            models.append(model)
        ensemble.model, ensemble.bootstrap = models[0], models[1:]
    return ensemble, meta
