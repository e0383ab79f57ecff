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
    "workflow/schemas/movies.schema.yaml" if MOVIES else "workflow/schemas/config.schema.yaml",
    set_default=True,
)

# The package comes from this checkout: its src/ goes first on the path, and Snakemake hands
# its process's path on to every script job, so a rule in a conda env (--sdm conda, which
# supplies the dependencies: envs/) imports this encscale, never a copy.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))


# What both studies share; then the study's branch, a folder of rule files, one stage (and
# one encscale subpackage) per file; then the rules both studies run on the branch's lists.
include: "workflow/rules/common.smk"


INSTALL_FIRST = False
if MOVIES:

    report: "workflow/report/movies.rst"

    include: "workflow/rules/movies/install.smk"


if MOVIES and not INSTALL_FIRST:

    include: "workflow/rules/movies/settings.smk"
    include: "workflow/rules/movies/simulate.smk"
    include: "workflow/rules/movies/fetch.smk"
    include: "workflow/rules/movies/tokenizer.smk"
    include: "workflow/rules/movies/gpt.smk"
    include: "workflow/rules/movies/prepare.smk"
    include: "workflow/rules/movies/features.smk"
    include: "workflow/rules/movies/figures.smk"

elif not MOVIES:

    report: "workflow/report/workflow.rst"

    include: "workflow/rules/images/settings.smk"
    include: "workflow/rules/images/simulate.smk"
    include: "workflow/rules/images/fetch.smk"
    include: "workflow/rules/images/prepare.smk"
    include: "workflow/rules/images/features.smk"
    include: "workflow/rules/images/ensemble.smk"
    include: "workflow/rules/images/submission.smk"
    include: "workflow/rules/images/scaling.smk"
    include: "workflow/rules/images/maps.smk"
    include: "workflow/rules/images/figures.smk"


if not INSTALL_FIRST:

    include: "workflow/rules/encoding.smk"
    include: "workflow/rules/provenance.smk"


# Cheap steps (tables, figures, score collection) run in the main Snakemake process, never
# queued on a cluster: each rule file declares its own; `all` is here.
localrules:
    all,


rule all:
    default_target: True
    input:
        final_targets(),
