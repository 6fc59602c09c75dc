# Analysis: probe each finished run (TID decomposition, conditioning), gather every run into tidy
# tables, compute each setting's trivial baselines, and compute every statistic once.  Everything
# downstream reads only results/tidy/ and results/stats/ (docs/analysis_contract.md).  The table
# names are normlab.analysis.contract's.
import json

TIDY_TABLES = [f"results/tidy/{name}.csv" for name in contract.TIDY_TABLES]
BASELINES = f"results/tidy/{contract.BASELINES_TABLE}.csv"
STATS_TABLES = [f"results/stats/{name}.csv" for name in contract.STATS_TABLES] + [
    f"results/stats/{contract.STATS_SETTINGS}"
]


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
            CFG, CELLS, {"run_dir": RUN_DIR, "probe_dir": PROBE_DIR, "benchmark": TRAIN_BENCHMARK}, RUN_CONFIGS
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


rule baselines:
    """Each setting's trivial baseline (majority class or tag, all-O F1, unigram perplexity, copy-source
    BLEU) on the test examples its runs evaluate: the learning bars' reference."""
    input:
        expand(f"{DATA_CACHE}/prepared/{{dataset}}/card.json", dataset=DATASETS_USED),
    output:
        BASELINES,
    params:
        settings=json.dumps(baseline_settings(CFG, CELLS, RUN_CONFIGS)),
        cache=lambda wc, input: str(Path(input[0]).parents[2]),
    log:
        "logs/analysis/baselines.log",
    resources:
        mem_mb=rule_resources("baselines")["mem_mb"],
        runtime=rule_resources("baselines")["runtime"],
    conda:
        "../envs/normlab.yaml"
    shell:
        "normlab baselines --settings {params.settings:q} --cache {params.cache} --out {output} > {log} 2>&1"


rule stats:
    """Every statistic, once: learning bars, paired comparisons (intervals, one-sided and
    non-inferiority tests at the declared margins, Holm, minimum detectable effects), TID per layer and
    per run, growth, the TID-gap correlation, curves and conditioning summaries."""
    input:
        TIDY_TABLES,
        BASELINES,
    output:
        STATS_TABLES,
    params:
        tidy=lambda wc, input: str(Path(input[0]).parent),
        out=lambda wc, output: str(Path(output[0]).parent),
        analysis=json.dumps(CFG["analysis"]),
    log:
        "logs/analysis/stats.log",
    resources:
        mem_mb=rule_resources("stats")["mem_mb"],
        runtime=rule_resources("stats")["runtime"],
    conda:
        "../envs/normlab.yaml"
    shell:
        "normlab stats --tidy {params.tidy} --out {params.out} --analysis {params.analysis:q} > {log} 2>&1"
