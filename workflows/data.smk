# Data: fetch (local: compute nodes often have no internet) and prepare each dataset the grid uses.


rule fetch:
    """Download and checksum-verify one dataset's sources (normlab.data)."""
    localrule: True
    output:
        stamp=f"{DATA_CACHE}/fetched/{{dataset}}.json",
    params:
        cache=lambda wc, output: str(Path(output.stamp).parents[1]),
    log:
        "logs/data/fetch_{dataset}.log",
    retries: 2
    conda:
        "../envs/normlab.yaml"
    shell:
        "normlab fetch {wildcards.dataset} --cache {params.cache} > {log} 2>&1"


rule prepare:
    """Tokenise, split and store one dataset; writes its data card last."""
    input:
        stamp=rules.fetch.output.stamp,
    output:
        card=f"{DATA_CACHE}/prepared/{{dataset}}/card.json",
    params:
        cache=lambda wc, output: str(Path(output.card).parents[2]),
    log:
        "logs/data/prepare_{dataset}.log",
    threads: rule_resources("prepare")["threads"]
    resources:
        mem_mb=rule_resources("prepare")["mem_mb"],
        runtime=rule_resources("prepare")["runtime"],
    conda:
        "../envs/normlab.yaml"
    shell:
        "normlab prepare {wildcards.dataset} --force --cache {params.cache} > {log} 2>&1"
