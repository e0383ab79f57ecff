# Brain maps per subject: each voxel's (vertex's) test accuracy of the final model, and its
# data-scaling slope (r against log10 training size, model scaling.data_model)
# (encscale.scaling).


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
    log:
        f"logs/{DATASET}/brain_maps/{{subject}}.log",
    conda:
        "../../../envs/analysis.yaml"
    params:
        sizes=SIZES,
        volume=VOLUME_MAPS,
    script:
        "../../scripts/brain_maps.py"
