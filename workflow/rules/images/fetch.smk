# NSD's files from its bucket, when the study reads NSD and nsd.source is s3 (encscale.data).
if FETCH_NSD:

    # One object of NSD's bucket (or of the mirror in nsd.endpoint_url) into nsd.root:
    # verified against its size and ETag (and the manifest's SHA-256, if given), resumed
    # after an interruption, written under its final name only when whole.
    rule fetch_nsd:
        output:
            f"{NSD['root']}/{{key}}",
        log:
            f"logs/{DATASET}/fetch_nsd/{{key}}.log",
        wildcard_constraints:
            key=r"nsddata(_betas|_stimuli)?/.+",
        conda:
            "../../../envs/data.yaml"
        resources:
            download_slots=1,
            runtime=lambda w: 600 if w.key.endswith(".hdf5") else 60,  # minutes; ~37 GB stimuli
        params:
            source=NSD_SOURCE,
            sha256=lambda w: MANIFEST[w.key][1] if w.key in MANIFEST else None,
        script:
            "../../scripts/fetch_nsd.py"
