"""Raw sources to the prepared study: NSD (layout, S3 fetch, preparation), the Algonauts 2023
download and its submissions, CNeuroMod movies and fMRI (DataLad fetch, preparation).

Writes ``stimuli.h5`` and ``responses/{subject}.h5`` (:mod:`encscale.contracts`).
"""

from encscale._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "algonauts": [
            "images_dir",
            "roi_mask_path",
            "roi_mapping_path",
            "fsaverage_mask_path",
            "image_files",
            "read_image",
            "read_fmri",
            "read_mapping",
            "read_labels",
            "read_fsaverage_mask",
            "read_mgh_vector",
            "count_training_images",
            "holdout_count",
            "holdout_rows",
            "read_ncsnr",
            "roi_datasets",
            "write_submission",
            "zip_submission",
        ],
        "cneuromod": ["Run", "movie_path", "parse_run", "list_runs", "read_run"],
        "datalad_fetch": [
            "require_git_annex",
            "is_dataset",
            "prune_empty_dirs",
            "fetch_dataset",
            "install_dataset",
        ],
        "movies": ["aligned_rows", "lagged_rows", "check_lags", "zscore", "prepare_movie_subject"],
        "nsd": [
            "subject_name",
            "subject_index",
            "stimuli_path",
            "expdesign_path",
            "root_of_expdesign",
            "betas_dir",
            "betas_path",
            "ncsnr_path",
            "fsaverage_ncsnr_path",
            "brainmask_path",
            "roi_path",
            "ctab_path",
            "read_expdesign",
            "read_ctab",
            "subject_image_ids",
            "trial_image_ids",
            "session_numbers",
            "load_nifti",
            "zscore_trials",
            "estimate_ncsnr",
        ],
        "prepare": ["stimulus_rows"],
        "stimuli": ["prepare_study_stimuli"],
        "s3": ["S3Source", "fetch_object", "open_remote", "read_manifest"],
    },
)
