"""Image models: the model registry (timm names, plugins), weights, layer capture and feature
extraction into ``features/{model}.h5`` (:mod:`encscale.contracts`).
"""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "extract": ["StimulusBatches", "extract_features"],
        "layers": [
            "maxpool_tokens",
            "block_maps",
            "tokens_to_map",
            "LayerExtractor",
            "match_modules",
            "select_layers",
            "preprocess",
        ],
        "registry": [
            "InputSpec",
            "build_model",
            "load_checkpoint",
            "set_offline",
            "input_spec",
            "weights_source",
        ],
        "weights": ["hub_source", "sha256_of", "fetch_weights"],
    },
)
