# Data: fetch (local: compute nodes often have no internet) and prepare each dataset the grid uses.


rule fetch:
    """Download and checksum-verify one dataset's sources (normlab.data)."""
    localrule: True
    output:
        stamp=f"{DATA_CACHE}/fetched/{{dataset}}.json",
    params:
        normlab=NORMLAB,
        cache=lambda wc, output: str(Path(output.stamp).parents[1]),
    log:
        "logs/data/fetch_{dataset}.log",
    retries: 2
    conda:
        "../envs/normlab.yaml"
    shell:
        "{params.normlab} fetch {wildcards.dataset} --cache {params.cache} > {log} 2>&1"


rule prepare:
    """Tokenise, split and store one dataset; writes its data card last."""
    input:
        stamp=rules.fetch.output.stamp,
    output:
        card=f"{DATA_CACHE}/prepared/{{dataset}}/card.json",
    params:
        normlab=NORMLAB,
        cache=lambda wc, output: str(Path(output.card).parents[2]),
    log:
        "logs/data/prepare_{dataset}.log",
    threads: threads_of("prepare")
    resources:
        **job_resources("prepare"),
    conda:
        "../envs/normlab.yaml"
    shell:
        "{params.normlab} prepare {wildcards.dataset} --force --cache {params.cache} > {log} 2>&1"
