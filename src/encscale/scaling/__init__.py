"""Scaling laws: power-law and log-linear fits with bootstrap intervals, the analyses over
scores, and the per-voxel values of the brain maps.
"""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "analysis": [
            "Part",
            "load_curves",
            "bootstrap_curves",
            "fit_laws",
            "scaling_tables",
            "write_scaling_tables",
            "read_scores",
            "read_table",
            "scaling_rows",
            "ensemble_rows",
            "geometric_sizes",
        ],
        "brainmaps": [
            "voxel_accuracy",
            "voxel_slopes",
            "fits_by_size",
            "write_volume_map",
            "write_surface_maps",
            "write_brain_maps",
        ],
        "laws": [
            "PowerLaw",
            "fit_loglinear",
            "predict_loglinear",
            "huber",
            "fit_power_law",
            "aic",
            "size_to_reach_loglinear",
            "size_to_reach_power",
        ],
    },
)
