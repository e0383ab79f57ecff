"""Voxelwise encoding models: the ridge engine and its scikit-learn estimators, one fit per
subject × model × size × draw (``fits/...h5``, :mod:`encscale.contracts`), the ensemble, and
ROI scores.
"""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "ensemble": ["ensemble_fit"],
        "estimator": ["RidgeCV", "FeatureSetRidgeCV"],
        "fit": [
            "subsample",
            "fit_encoding",
            "lagged_stimuli",
            "sample_lags",
            "LaggedSet",
            "lagged_sets",
            "LaggedReader",
            "alpha_grid",
            "fit_encoding_from_config",
        ],
        "ridge": [
            "kfold_splits",
            "RidgeCVResult",
            "SelectedRidge",
            "fit_ridge_cv",
            "fit_ridge_cv_select",
        ],
        "scores": ["roi_masks", "score_fit", "collect_scores"],
    },
)
