"""Both studies' figures and the brain-map plots, in one shared style."""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "images": ["save_figure", "plot_data_scaling", "plot_param_scaling", "plot_roi_scores"],
        "video": [
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
