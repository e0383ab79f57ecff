# encscale: scaling laws of brain encoding models.
#   snakemake --profile profiles/default            the study in config/config.yaml (the demo)
#   snakemake --profile profiles/default --report results/demo/report.html
from snakemake.utils import min_version, validate

min_version("9.0")


report: "workflow/report/workflow.rst"


# A study's config file (--configfile) replaces the demo's whole: the two are not merged,
# so a study's models, subjects and sizes are exactly its own. --config tweaks either.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema/config.schema.yaml", set_default=True)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/encoding.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        final_targets(),
    default_target: True
