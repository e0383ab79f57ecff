# The CNeuroMod release's file tree, which the study's movie lists are read from. Planning
# never clones: while the tree is missing (cneuromod.source set, nothing under
# cneuromod.root yet) the workflow holds this one job, which installs the dataset without
# file content; the next run of the same command plans the study.
CNEUROMOD_MOVIES = f"{config['cneuromod']['root']}/stimuli/movies"
INSTALL_FIRST = config["dataset"] == "cneuromod" and not Path(CNEUROMOD_MOVIES).is_dir()

if INSTALL_FIRST:
    if not config["cneuromod"]["source"]:
        config_error(
            "cneuromod.root",
            f"no CNeuroMod movies under {CNEUROMOD_MOVIES}: set cneuromod.root to an installed "
            "copy of the dataset, or cneuromod.source to install it from",
        )
    logger.warning(
        f"The CNeuroMod dataset is not installed under {config['cneuromod']['root']} yet: this "
        "run installs its file tree (DataLad, no file content) from cneuromod.source; run the "
        "same command again to plan the study."
    )

    rule install_cneuromod:
        output:
            directory(CNEUROMOD_MOVIES),
        log:
            f"logs/{DATASET}/install_cneuromod.log",
        conda:
            "../../../envs/data.yaml"
        resources:
            download_slots=1,
        params:
            source=config["cneuromod"]["source"],
            root=config["cneuromod"]["root"],
        script:
            "../../scripts/install_cneuromod.py"

    def final_targets():
        return [CNEUROMOD_MOVIES]
