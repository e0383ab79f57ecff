"""The movie study's models: video decoding and clips, the VQ-VAE tokenizer, GPT-2 over its
codes (training, the grid of runs) and per-layer hidden-state features.
"""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "clips": [
            "clip_seconds",
            "training_clip_starts",
            "tr_clip_table",
            "movie_durations",
            "iter_clips",
            "read_clips",
            "encode_clips",
        ],
        "decode": [
            "write_video",
            "VideoInfo",
            "probe_video",
            "frame_times",
            "read_frames",
            "iter_windows",
            "tr_windows",
            "canonical_hrf",
            "convolve_hrf",
        ],
        "features": ["pooled_hidden_states", "extract_gpt_features"],
        "gpt": [
            "GPTSpec",
            "TrainSettings",
            "build_gpt",
            "with_start_token",
            "learning_rate",
            "batch_rows",
            "sequence_loss",
            "evaluate",
            "run_signature",
            "TrainState",
            "save_training_checkpoint",
            "load_training_checkpoint",
            "train_gpt",
            "hidden_states",
            "save_gpt",
            "load_gpt",
        ],
        "grid": ["run_name", "run_grid"],
        "runs": ["read_codes", "train_run", "summarise_run", "runs_table"],
        "selection": ["select_movies"],
        "stimuli": ["prepare_movie_stimuli"],
        "tokenizer": ["fit_tokenizer", "tokenize_pretraining_clips"],
        "vqvae": [
            "VQVAEConfig",
            "clip_from_frames",
            "Codebook",
            "ResBlock",
            "VQVAE",
            "train_vqvae",
            "save_checkpoint",
            "load_checkpoint",
        ],
    },
)
