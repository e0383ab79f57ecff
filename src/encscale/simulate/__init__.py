"""Seeded simulators of both studies' data, in the sources' own layouts: a miniature NSD and
CNeuroMod-style movies with planted signals.
"""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "movies": [
            "shot_starts",
            "render_movie",
            "stimulus_features",
            "per_tr",
            "receptive_cells",
            "cell_columns",
            "local_contrast",
            "lagged_hrf",
            "parcel_lags",
            "respond",
            "simulate_movies",
        ],
        "nsd": [
            "simulate_nsd",
            "make_images",
            "make_design",
            "volume_affine",
            "brain_atlases",
            "hidden_feature_maps",
            "voxel_model",
            "voxel_signal",
            "trial_betas",
            "session_sizes",
        ],
        "truth": ["truth_path"],
    },
)
