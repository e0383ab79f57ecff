"""Image models: the model registry (timm names, plugins), weights, layer capture and feature
extraction into ``features/{model}.h5`` (:mod:`encscale.contracts`).
"""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "features": [
            "maxpool_tokens",
            "block_maps",
            "tokens_to_map",
            "LayerExtractor",
            "match_modules",
            "select_layers",
            "preprocess",
            "StimulusBatches",
            "extract_features",
            "Target",
            "image_dataset",
            "feature_sets",
        ],
        "registry": [
            "InputSpec",
            "build_model",
            "load_checkpoint",
            "set_offline",
            "count_parameters",
            "input_spec",
            "weights_source",
        ],
        "weights": ["hub_source", "sha256_of", "fetch_weights"],
    },
)
