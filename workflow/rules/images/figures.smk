# The first study's figures (PNG for the report, SVG for print): the scaling laws, the final
# scores per ROI and the brain maps (encscale.figures).


localrules:
    figure_data_scaling,
    figure_param_scaling,
    figure_roi_scores,
    figure_brain_map,


rule figure_data_scaling:
    input:
        scores=f"{RESULTS}/scores/scores.tsv",
        fits=f"{RESULTS}/scaling/data_scaling.tsv",
        extrapolation=f"{RESULTS}/scaling/extrapolation.tsv",
    output:
        png=report(
            f"{RESULTS}/figures/data_scaling.png",
            caption="../../report/data_scaling.rst",
            category="Scaling laws",
        ),
        svg=f"{RESULTS}/figures/data_scaling.svg",
    log:
        f"logs/{DATASET}/figure_data_scaling.log",
    conda:
        "../../../envs/analysis.yaml"
    params:
        atlas=config["scaling"]["atlas"],
        model=config["scaling"]["data_model"],
    script:
        "../../scripts/figure_data_scaling.py"


rule figure_param_scaling:
    input:
        scores=f"{RESULTS}/scores/scores.tsv",
        fits=f"{RESULTS}/scaling/param_scaling.tsv",
    output:
        png=report(
            f"{RESULTS}/figures/param_scaling.png",
            caption="../../report/param_scaling.rst",
            category="Scaling laws",
        ),
        svg=f"{RESULTS}/figures/param_scaling.svg",
    log:
        f"logs/{DATASET}/figure_param_scaling.log",
    conda:
        "../../../envs/analysis.yaml"
    params:
        atlas=config["scaling"]["atlas"],
        size=config["scaling"]["param_size"],
        families=MODEL_FAMILIES,
    script:
        "../../scripts/figure_param_scaling.py"


rule figure_roi_scores:
    input:
        scores=f"{RESULTS}/scores/scores.tsv",
    output:
        png=report(
            f"{RESULTS}/figures/roi_scores.png",
            caption="../../report/roi_scores.rst",
            category="Final scores",
        ),
        svg=f"{RESULTS}/figures/roi_scores.svg",
    log:
        f"logs/{DATASET}/figure_roi_scores.log",
    conda:
        "../../../envs/analysis.yaml"
    params:
        final=config["final"],
    script:
        "../../scripts/figure_roi_scores.py"


rule figure_brain_map:
    input:
        lambda w: (
            f"{RESULTS}/maps/{w.subject}/{w.name}.nii.gz"
            if VOLUME_MAPS
            else [f"{RESULTS}/maps/{w.subject}/{h}.{w.name}.mgh" for h in ("lh", "rh")]
        ),
    output:
        png=report(
            f"{RESULTS}/figures/brain_maps/{{subject}}_{{name}}.png",
            caption="../../report/brain_map.rst",
            category="Brain maps",
            subcategory="{subject}",
            labels={"subject": "{subject}", "map": "{name}"},
        ),
        svg=f"{RESULTS}/figures/brain_maps/{{subject}}_{{name}}.svg",
    log:
        f"logs/{DATASET}/figure_brain_map/{{subject}}_{{name}}.log",
    wildcard_constraints:
        name="|".join(MAP_NAMES),
    conda:
        "../../../envs/analysis.yaml"
    params:
        title=lambda w: map_title(w.subject, w.name),
        volume=VOLUME_MAPS,
        fsaverage_dir=config["brain_maps"]["fsaverage_dir"],
    script:
        "../../scripts/figure_brain_map.py"
