# normlab: one DAG from raw data to every table and figure.
#
#   snakemake --cores 2                                   the default configuration (config/default.yaml)
#   snakemake --cores 2 --configfile config/test.yaml     a tiny grid (what the tests run)
#   snakemake --cores 8 --profile slurm                   the papers' grid (config/paper.yaml) on SLURM GPUs
#   snakemake --cores 2 paper_tables/claims.md --configfile config/test.yaml   one target: targets go
#                                         before --configfile, which reads every word after it as a config
#   snakemake --cores 2 --forceall --config from_tidy=true --configfile config/scale.yaml config/scale_seed1.yaml
#                                         statistics, tables, figures, notebooks from the committed tidy
#                                         tables only (`make figures`; docs/workflow.md)
#
# Stages, one rule file each: workflows/data.smk (fetch, prepare), workflows/train.smk (one job per
# dataset x placement x norm x seed), workflows/analysis.smk (probe each run, tidy tables, statistics),
# workflows/paper.smk (paper_tables/, figures/, executed notebooks).  The configuration is checked
# against workflows/schemas/config.schema.yaml before anything runs.
from snakemake.utils import min_version

min_version("9.0")


# `snakemake --report report.html`: this description, then every table, figure and notebook (as HTML)
# with its caption (workflows/report/*.rst: scale, seeds and key number read from the statistics).
report: "workflows/report/workflow.rst"


include: "workflows/common.smk"
include: "workflows/data.smk"
include: "workflows/train.smk"
include: "workflows/analysis.smk"
include: "workflows/paper.smk"


onstart:
    refuse_gpu_jobs_without_a_partition()


rule all:
    default_target: True
    localrule: True
    input:
        PAPER_OUTPUTS,
