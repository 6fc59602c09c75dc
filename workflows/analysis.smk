# Analysis: probe each finished run (TID decomposition, conditioning), gather every run into tidy
# tables, compute each setting's trivial baselines, and compute every statistic once.  Everything
# downstream reads only results/tidy/ and results/stats/ (docs/analysis_contract.md).  The table
# names are normlab.analysis.contract's.
import json

# The analysis (collect, baselines, stats and the paper rules) is one group: under SLURM, one job for
# all of it, on the CPU partition, instead of one queued job per step.
ANALYSIS_GROUP = "analysis"
TIDY_TABLES = [f"{PATHS.tidy}/{name}.csv" for name in contract.TIDY_TABLES]
BASELINES = f"{PATHS.tidy}/{contract.BASELINES_TABLE}.csv"
STATS_TABLES = [f"{PATHS.stats}/{name}.csv" for name in contract.STATS_TABLES] + [
    f"{PATHS.stats}/{contract.STATS_SETTINGS}"
]

# What the statistics and the paper rules read: every tidy table; from committed tidy tables
# (FROM_TIDY), those a configuration commits (contract.committed_tidy_tables) and the uncommitted ones
# only where present (tid.csv: the statistics then say that online TID cannot be measured).
if FROM_TIDY:
    _missing = [f"{PATHS.tidy}/{name}.csv" for name in contract.committed_tidy_tables()
                if not Path(PATHS.tidy, f"{name}.csv").is_file()]
    if _missing:
        raise WorkflowError(
            f"from_tidy: configuration {CFG['name']!r} has no committed tidy tables in {Path.cwd()}: "
            f"{', '.join(_missing)} missing; a full run writes them (make run CONFIG=...), or check out "
            "a commit that holds them (docs/workflow.md, From the committed tidy tables)"
        )
    TIDY_INPUTS = [f"{PATHS.tidy}/{name}.csv" for name in (*contract.TIDY_TABLES, contract.BASELINES_TABLE)
                   if name not in contract.UNCOMMITTED_TIDY_TABLES or Path(PATHS.tidy, f"{name}.csv").is_file()]
else:
    TIDY_INPUTS = TIDY_TABLES + [BASELINES]


rule probe:
    """TID beside its two sampling floors (i.i.d. tokens, random whole sentences), the running-estimate
    lag, and the conditioning of each norm's output and input, per layer, at the run's final weights."""
    input:
        final=rules.train.output.final,
        card=prepared_card,
    output:
        summary=f"{PATHS.probe_dir}/probe.json",
        tid=f"{PATHS.probe_dir}/tid_decomposition.jsonl",
        conditioning=f"{PATHS.probe_dir}/conditioning.jsonl",
    params:
        normlab=NORMLAB,
        run_dir=lambda wc, input: str(Path(input.final).parent),
        out=lambda wc, output: str(Path(output.summary).parent),
        mode=CFG["analysis"]["probe_mode"],
        batches=CFG["analysis"]["probe_batches"],
        population_tokens=CFG["analysis"]["probe_population_tokens"],
        cache=lambda wc, input: str(Path(input.card).parents[2]),
    log:
        PATHS.probe_log,
    threads: threads_of("probe")
    resources:
        **job_resources("probe"),
    conda:
        "../envs/normlab.yaml"
    shell:
        probe_command("{params.normlab}", "{params.run_dir}", "{params.out}", "{params.mode}", "{params.batches}",
                      "{params.population_tokens}", "{params.cache}", log="{log}")


rule manifest:
    """One row per cell: its identity and where its files are (docs/analysis_contract.md §2)."""
    localrule: True
    output:
        PATHS.manifest,
    params:
        text=manifest_csv(CFG, CELLS, PATHS.manifest_patterns(), RUN_CONFIGS),
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


# From committed tidy tables, nothing writes them: the run, probe and data rules stay out of the DAG.
if not FROM_TIDY:

    rule collect:
        """Every run, probe and benchmark of the manifest into tidy tables."""
        input:
            manifest=rules.manifest.output[0],
            finals=per_run(f"{PATHS.run_dir}/final.json"),
            probes=per_run(f"{PATHS.probe_dir}/probe.json"),
        output:
            TIDY_TABLES,
        params:
            normlab=NORMLAB,
            out=lambda wc, output: str(Path(output[0]).parent),
        log:
            "logs/analysis/collect.log",
        group: ANALYSIS_GROUP
        resources:
            **job_resources("collect"),
        conda:
            "../envs/normlab.yaml"
        shell:
            "{params.normlab} collect --manifest {input.manifest} --out {params.out} > {log} 2>&1"


    rule baselines:
        """Each setting's trivial baseline (majority class or tag, all-O F1, unigram perplexity, copy-source
        BLEU) on the test examples its runs evaluate: the learning bars' reference."""
        input:
            expand(f"{DATA_CACHE}/prepared/{{dataset}}/card.json", dataset=DATASETS_USED),
        output:
            BASELINES,
        params:
            normlab=NORMLAB,
            settings=json.dumps(baseline_settings(CFG, CELLS, RUN_CONFIGS)),
            cache=lambda wc, input: str(Path(input[0]).parents[2]),
        log:
            "logs/analysis/baselines.log",
        group: ANALYSIS_GROUP
        resources:
            **job_resources("baselines"),
        conda:
            "../envs/normlab.yaml"
        shell:
            "{params.normlab} baselines --settings {params.settings:q} --cache {params.cache} --out {output} > {log} 2>&1"


rule stats:
    """Every statistic, once: learning bars, paired comparisons (intervals, one-sided and
    non-inferiority tests at the declared margins, Holm, minimum detectable effects), TID per layer and
    per run, growth, the TID-gap correlation, curves and conditioning summaries."""
    input:
        TIDY_INPUTS,
    output:
        STATS_TABLES,
    params:
        normlab=NORMLAB,
        tidy=lambda wc, input: str(Path(input[0]).parent),
        out=lambda wc, output: str(Path(output[0]).parent),
        analysis=json.dumps(CFG["analysis"]),
    log:
        "logs/analysis/stats.log",
    group: ANALYSIS_GROUP
    resources:
        **job_resources("stats"),
    conda:
        "../envs/normlab.yaml"
    shell:
        "{params.normlab} stats --tidy {params.tidy} --out {params.out} --analysis {params.analysis:q} > {log} 2>&1"
