# The second study's figures (PNG for the report, SVG for print) (encscale.figures).


localrules:
    figures_video,


rule figures_video:
    input:
        runs=f"{RESULTS}/training/runs.tsv",
        scores=f"{RESULTS}/scores/scores.tsv",
    output:
        **{
            name: report(
                f"{RESULTS}/figures/{name}.png",
                caption=f"../../report/{name}.rst",
                category="Video study",
            )
            for name in VIDEO_FIGURES
        },
        **{f"{name}_svg": f"{RESULTS}/figures/{name}.svg" for name in VIDEO_FIGURES},
    log:
        f"logs/{DATASET}/figures_video.log",
    conda:
        "../../../envs/analysis.yaml"
    params:
        base=GRID_BASE,
    script:
        "../../scripts/figures_video.py"
