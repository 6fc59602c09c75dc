# Training: one job per dataset x placement x norm x seed.  A job resumes from its last checkpoint
# when it was interrupted (--rerun-incomplete), and starts afresh when the cell's config changed.


rule run_config:
    """The cell's run config (normlab.train), validated at parse time; `normlab train --config` runs it alone."""
    localrule: True
    output:
        "results/configs/{dataset}/{placement}/{norm}/seed{seed}.yaml",
    params:
        text=lambda wc: run_config_yaml(RUN_CONFIGS[cell_id(wc)]),
    log:
        "logs/configs/{dataset}/{placement}/{norm}/seed{seed}.log",
    conda:
        "../envs/normlab.yaml"
    script:
        "scripts/write_text.py"


rule train:
    """Train one cell.  A diverged run ends normally with status "diverged" in final.json, so it is
    marked in the tables instead of stopping the workflow."""
    input:
        config=rules.run_config.output[0],
        card=prepared_card,
    output:
        final=f"{RUN_DIR}/final.json",
    params:
        run_dir=lambda wc, output: str(Path(output.final).parent),
    log:
        "logs/train/{dataset}/{placement}/{norm}/seed{seed}.log",
    benchmark:
        TRAIN_BENCHMARK
    threads: rule_resources("train")["threads"]
    resources:
        mem_mb=rule_resources("train")["mem_mb"],
        runtime=rule_resources("train")["runtime"],
    conda:
        "../envs/normlab.yaml"
    shell:
        "normlab train --config {input.config} --out {params.run_dir} --resume --restart-if-changed "
        "> {log} 2>&1"
