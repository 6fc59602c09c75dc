# Training: one job per dataset x placement x norm x seed.  A job resumes from its last checkpoint
# when it was interrupted (--rerun-incomplete), and starts afresh when the cell's config changed.


rule run_config:
    """The cell's run config (normlab.train), validated at parse time; `normlab train --config` runs it alone."""
    localrule: True
    output:
        PATHS.config,
    params:
        text=lambda wc: run_config_yaml(RUN_CONFIGS[cell_id(wc)]),
    log:
        PATHS.config_log,
    conda:
        "../envs/normlab.yaml"
    script:
        "scripts/write_text.py"


rule train:
    """Train one cell, on `datasets.NAME.gpus` GPUs (one process each; torchrun when more than one).  A
    diverged run ends normally with status "diverged" in final.json, so it is marked in the tables
    instead of stopping the workflow."""
    input:
        config=rules.run_config.output[0],
        card=prepared_card,
    output:
        final=f"{PATHS.run_dir}/final.json",
    params:
        run_dir=lambda wc, output: str(Path(output.final).parent),
        normlab=launcher,
    log:
        PATHS.train_log,
    benchmark:
        PATHS.benchmark
    threads: threads_of("train")
    resources:
        **job_resources("train"),
    conda:
        "../envs/normlab.yaml"
    shell:
        train_command("{params.normlab}", "{input.config}", "{params.run_dir}", log="{log}")
