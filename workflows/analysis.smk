# Analysis: probe each finished run (TID decomposition, conditioning), gather every run into tidy
# tables, and compute the statistics across seeds.  Everything downstream reads only results/tidy/
# and results/stats/ (docs/analysis_contract.md).

TIDY_TABLES = [
    f"results/tidy/{name}.csv"
    for name in ("runs", "scores", "curves", "tid", "tid_decomposition", "conditioning", "benchmarks")
]
STATS_TABLES = [f"results/stats/{name}.csv" for name in ("summary", "comparisons", "tid_summary", "correlations")]


rule probe:
    """TID beside its two sampling floors (i.i.d. tokens, random whole sentences), the running-estimate
    lag, and the conditioning of each norm's output and input, per layer, at the run's final weights."""
    input:
        final=rules.train.output.final,
        card=prepared_card,
    output:
        summary=f"{PROBE_DIR}/probe.json",
        tid=f"{PROBE_DIR}/tid_decomposition.jsonl",
        conditioning=f"{PROBE_DIR}/conditioning.jsonl",
    params:
        run_dir=lambda wc, input: str(Path(input.final).parent),
        out=lambda wc, output: str(Path(output.summary).parent),
        mode=CFG["analysis"]["probe_mode"],
        batches=CFG["analysis"]["probe_batches"],
        population_tokens=CFG["analysis"]["probe_population_tokens"],
        cache=lambda wc, input: str(Path(input.card).parents[2]),
    log:
        "logs/probe/{dataset}/{placement}/{norm}/seed{seed}.log",
    threads: rule_resources("probe")["threads"]
    resources:
        mem_mb=rule_resources("probe")["mem_mb"],
        runtime=rule_resources("probe")["runtime"],
    conda:
        "../envs/normlab.yaml"
    shell:
        "normlab probe --run {params.run_dir} --out {params.out} --mode {params.mode} --batches {params.batches} "
        "--population-tokens {params.population_tokens} "
        "--cache {params.cache} > {log} 2>&1"


rule manifest:
    """One row per cell: its identity and where its files are (docs/analysis_contract.md §2)."""
    localrule: True
    output:
        "results/manifest.csv",
    params:
        text=manifest_csv(
            CFG, CELLS, {"run_dir": RUN_DIR, "probe_dir": PROBE_DIR, "benchmark": TRAIN_BENCHMARK}
        ),
    log:
        "logs/analysis/manifest.log",
    conda:
        "../envs/normlab.yaml"
    script:
        "scripts/write_text.py"


rule sweep_points:
    """Which setting is which point of the sweep (factor, level, base point); header only without a sweep."""
    localrule: True
    output:
        "results/sweep_points.csv",
    params:
        text=sweep_points_csv(CFG),
    log:
        "logs/analysis/sweep_points.log",
    conda:
        "../envs/normlab.yaml"
    script:
        "scripts/write_text.py"


rule collect:
    """Every run, probe and benchmark of the manifest into tidy tables."""
    input:
        manifest=rules.manifest.output[0],
        finals=per_run(f"{RUN_DIR}/final.json"),
        probes=per_run(f"{PROBE_DIR}/probe.json"),
    output:
        TIDY_TABLES,
    params:
        out=lambda wc, output: str(Path(output[0]).parent),
    log:
        "logs/analysis/collect.log",
    resources:
        mem_mb=rule_resources("collect")["mem_mb"],
        runtime=rule_resources("collect")["runtime"],
    conda:
        "../envs/normlab.yaml"
    shell:
        "normlab collect --manifest {input.manifest} --out {params.out} > {log} 2>&1"


rule stats:
    """Mean and spread across seeds, paired tests, bootstrap CIs, Holm correction, TID-gap correlation."""
    input:
        TIDY_TABLES,
    output:
        STATS_TABLES,
    params:
        tidy=lambda wc, input: str(Path(input[0]).parent),
        out=lambda wc, output: str(Path(output[0]).parent),
    log:
        "logs/analysis/stats.log",
    resources:
        mem_mb=rule_resources("stats")["mem_mb"],
        runtime=rule_resources("stats")["runtime"],
    conda:
        "../envs/normlab.yaml"
    shell:
        "normlab stats --tidy {params.tidy} --out {params.out} > {log} 2>&1"
