# encscale: scaling laws of brain encoding models.
#   snakemake --profile profiles/local            the study in config/config.yaml (the demo)
#   snakemake --profile profiles/local --report results/demo/report.html
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# A study's config file (--configfile) replaces the demo's whole: the two are not merged,
# so a study's models, subjects and sizes are exactly its own. --config tweaks either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


MOVIE_DATASETS = ("demo_movies", "cneuromod")  # the second study: movies, VideoGPT
MOVIES = config.get("dataset") in MOVIE_DATASETS
validate(
    config,
    "config/schema/movies.schema.yaml" if MOVIES else "config/schema/config.schema.yaml",
    set_default=True,
)

# The package comes from this checkout: its src/ goes first on the path, and Snakemake hands
# its process's path on to every script job, so a rule in a conda env (--sdm conda, which
# supplies the dependencies: envs/) imports this encscale, never a copy.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))


include: "workflow/rules/shared.smk"


if MOVIES:

    report: "workflow/report/movies.rst"

    include: "workflow/rules/movies_common.smk"
    include: "workflow/rules/fetch_cneuromod.smk"
    include: "workflow/rules/movies.smk"
    include: "workflow/rules/encoding.smk"
    include: "workflow/rules/video_figures.smk"

else:

    report: "workflow/report/workflow.rst"

    include: "workflow/rules/common.smk"
    include: "workflow/rules/data.smk"
    include: "workflow/rules/features.smk"
    include: "workflow/rules/encoding.smk"
    include: "workflow/rules/scaling.smk"
    include: "workflow/rules/figures.smk"
    include: "workflow/rules/maps.smk"

    localrules:
        figure_data_scaling,
        figure_param_scaling,
        figure_roi_scores,
        figure_brain_map,
        fit_scaling,


include: "workflow/rules/provenance.smk"


# Cheap steps run in the main Snakemake process, never queued on a cluster.
localrules:
    all,
    score_fit,
    collect_scores,
    study_config,
    software_versions,
    rule_runtimes,


rule all:
    input:
        final_targets(),
    default_target: True
