"""Both studies' figures and the brain-map plots, in one shared style."""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "brainmaps": [
            "plot_brain_map",
            "volume_cut_coords",
            "plot_volume_map",
            "plot_surface_maps",
        ],
        "images": [
            "plot_data_scaling",
            "plot_param_scaling",
            "plot_roi_scores",
            "figure_data_scaling",
            "figure_param_scaling",
            "figure_roi_scores",
        ],
        "style": ["save_figure", "mean_curve", "finish_scaling_axes"],
        "video": [
            "video_figures",
            "architecture_table",
            "sweep",
            "plot_architecture",
            "plot_data_size",
            "precision_speedups",
            "plot_precision",
            "pareto_front",
            "plot_compute_frontier",
        ],
    },
)
