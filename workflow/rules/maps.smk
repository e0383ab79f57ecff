# Brain maps per subject: each voxel's (vertex's) test accuracy of the final model, and its
# data-scaling slope (r against log10 training size, model scaling.data_model).


rule brain_maps:
    input:
        unpack(map_inputs),
    output:
        **(
            dict(
                accuracy=f"{RESULTS}/maps/{{subject}}/accuracy.nii.gz",
                slope=f"{RESULTS}/maps/{{subject}}/slope.nii.gz",
            )
            if VOLUME_MAPS
            else dict(
                accuracy=[f"{RESULTS}/maps/{{subject}}/{h}.accuracy.mgh" for h in ("lh", "rh")],
                slope=[f"{RESULTS}/maps/{{subject}}/{h}.slope.mgh" for h in ("lh", "rh")],
            )
        ),
    params:
        sizes=SIZES,
        volume=VOLUME_MAPS,
    log:
        f"logs/{DATASET}/brain_maps/{{subject}}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/brain_maps.py"


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
            caption="../report/brain_map.rst",
            category="Brain maps",
            subcategory="{subject}",
            labels={"subject": "{subject}", "map": "{name}"},
        ),
        svg=f"{RESULTS}/figures/brain_maps/{{subject}}_{{name}}.svg",
    wildcard_constraints:
        name="|".join(MAP_NAMES),
    params:
        title=lambda w: map_title(w.subject, w.name),
        volume=VOLUME_MAPS,
        fsaverage_dir=config["brain_maps"]["fsaverage_dir"],
    log:
        f"logs/{DATASET}/figure_brain_map/{{subject}}_{{name}}.log",
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/figure_brain_map.py"
