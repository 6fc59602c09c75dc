# Paper: tables into paper_tables/, figures into figures/, executed notebooks into notebooks/executed/.
# These rules read only the tidy tables and statistics, so re-plotting never re-trains anything.
# The names are normlab.analysis.contract's.

TABLES = list(contract.PAPER_TABLES)
FIGURES = list(contract.FIGURES)
NOTEBOOKS = contract.notebooks(SWEEP)
SCALE_FIGURES = contract.scale_figures(CFG["sweep"]["factors"]) if SWEEP else []
SCALE_OUTPUTS = [f"paper_tables/{contract.SCALE_TABLE}.{ext}" for ext in ("md", "csv")] + [
    f"figures/{f}.{ext}" for f in SCALE_FIGURES for ext in ("pdf", "png")
]

# The report's captions state each figure's scale, seeds and key number, read from the tidy runs and the
# statistics when `snakemake --report` renders them (normlab.analysis.captions; never a re-run trigger).
CAPTIONS = Captions(PATHS.tidy, PATHS.stats, "paper_tables")

PAPER_OUTPUTS = (
    [f"paper_tables/{t}.{ext}" for t in TABLES for ext in ("md", "tex", "csv")]
    + [f"paper_tables/{name}" for name in contract.CLAIMS_OUTPUTS]
    + ([] if FROM_TIDY else ["paper_tables/datasets.md"])  # from the data cards: not from tidy tables
    + [f"figures/{f}.{ext}" for f in FIGURES for ext in ("pdf", "png")]
    + [f"notebooks/executed/{nb}.ipynb" for nb in NOTEBOOKS]
    + (SCALE_OUTPUTS if SWEEP else [])
)


rule tables:
    """Table 2 analogue (LN/BN/RBN/PowerNorm, Post and Pre), the LN family, conditioning, runtime."""
    input:
        stats=STATS_TABLES,
    output:
        [
            report(
                f"paper_tables/{t}.md",
                caption=f"report/{t}.rst",
                category="Tables",
            )
            for t in TABLES
        ],
        [f"paper_tables/{t}.{ext}" for t in TABLES for ext in ("tex", "csv")],
    params:
        normlab=NORMLAB,
        stats=lambda wc, input: str(Path(input.stats[0]).parent),
        out=lambda wc, output: str(Path(output[0]).parent),
        captions=CAPTIONS,
    log:
        "logs/paper/tables.log",
    group: ANALYSIS_GROUP
    resources:
        **job_resources("tables"),
    conda:
        "../envs/normlab.yaml"
    shell:
        "{params.normlab} tables --stats {params.stats} --out {params.out} > {log} 2>&1"


rule claims:
    """One verdict per claim of the two papers (supported / contradicted / inconclusive / not testable
    here), with its evidence (and, with a sweep, the scale study's section)."""
    input:
        stats=STATS_TABLES,
        scale=["paper_tables/scale_study.csv"] if SWEEP else [],
    output:
        md=report("paper_tables/claims.md", caption="report/claims.rst", category="Claims"),
        csv="paper_tables/claims.csv",
    params:
        normlab=NORMLAB,
        stats=lambda wc, input: str(Path(input.stats[0]).parent),
        scale=lambda wc, input: f"--scale-study {input.scale[0]}" if input.scale else "",
        captions=CAPTIONS,
    log:
        "logs/paper/claims.log",
    group: ANALYSIS_GROUP
    resources:
        **job_resources("claims"),
    conda:
        "../envs/normlab.yaml"
    shell:
        "{params.normlab} claims --stats {params.stats} --out {output.md} {params.scale} > {log} 2>&1"


rule figures:
    input:
        tidy=TIDY_INPUTS,
        stats=STATS_TABLES,
    output:
        [
            report(f"figures/{f}.png", caption=f"report/{f}.rst", category="Figures")
            for f in FIGURES
        ],
        [f"figures/{f}.pdf" for f in FIGURES],
    params:
        normlab=NORMLAB,
        tidy=lambda wc, input: str(Path(input.tidy[0]).parent),
        stats=lambda wc, input: str(Path(input.stats[0]).parent),
        out=lambda wc, output: str(Path(output[0]).parent),
        config_sha256=CONFIG_SHA256,  # into every figure's metadata, beside the commit
        captions=CAPTIONS,
    log:
        "logs/paper/figures.log",
    group: ANALYSIS_GROUP
    resources:
        **job_resources("figures"),
    conda:
        "../envs/normlab.yaml"
    shell:
        "{params.normlab} figures --tidy {params.tidy} --stats {params.stats} --out {params.out} "
        "--config-sha256 {params.config_sha256} > {log} 2>&1"


rule notebook:
    """Execute one jupytext notebook against the tidy tables (papermill) into an .ipynb to open."""
    input:
        # the notebook sources live with the workflow (the working directory may be elsewhere)
        notebook=str(Path(workflow.basedir, "notebooks", "{notebook}.py")),
        tidy=TIDY_INPUTS,
        stats=STATS_TABLES,
        tables=rules.tables.output,
        # not the figures: a notebook draws its own with the same functions (and runs beside `figures`)
        scale=SCALE_OUTPUTS if SWEEP else [],  # the scale notebook checks itself against the table
    output:
        ipynb="notebooks/executed/{notebook}.ipynb",
        # what the report shows (an .ipynb would be raw JSON there)
        html=report("notebooks/executed/{notebook}.html", caption="report/notebook.rst", category="Notebooks"),
    params:
        normlab=NORMLAB,
        tidy=lambda wc, input: str(Path(input.tidy[0]).parent),
        stats=lambda wc, input: str(Path(input.stats[0]).parent),
        tables=lambda wc, input: str(Path(input.tables[0]).parent),
        figures=lambda wc, output: str(Path(output.ipynb).parents[2] / "figures"),  # the figures job's folder
        out=lambda wc, output: str(Path(output.ipynb).parent),
        captions=CAPTIONS,
    log:
        "logs/paper/notebook_{notebook}.log",
    group: ANALYSIS_GROUP
    resources:
        **job_resources("notebook"),
    conda:
        "../envs/normlab.yaml"
    shell:
        "{params.normlab} notebooks {input.notebook} --html --out {params.out} --tidy {params.tidy} "
        "--stats {params.stats} --tables {params.tables} --figures {params.figures} > {log} 2>&1"


if not FROM_TIDY:  # it reads the data cache

    rule datasets_table:
        """The datasets this configuration uses: sizes, vocabularies, licenses, source checksums."""
        localrule: True  # reads the data cards only
        input:
            expand(f"{DATA_CACHE}/prepared/{{dataset}}/card.json", dataset=DATASETS_USED),
        output:
            report("paper_tables/datasets.md", caption="report/datasets.rst", category="Tables"),
        params:
            normlab=NORMLAB,
            cache=lambda wc, input: str(Path(input[0]).parents[2]),
            names=" ".join(DATASETS_USED),
        log:
            "logs/paper/datasets_table.log",
        conda:
            "../envs/normlab.yaml"
        shell:
            "{params.normlab} prepare --cards {params.names} --cache {params.cache} --out {output} > {log} 2>&1"


if SWEEP:

    rule scale_study:
        """The scale study: a table, a figure per factor and the summary (TID excess over the floor vs scale)."""
        input:
            tidy=TIDY_INPUTS,
            stats=STATS_TABLES,
            points=rules.sweep_points.output[0],
        output:
            table=report(
                f"paper_tables/{contract.SCALE_TABLE}.md", caption="report/scale_study.rst", category="Tables"
            ),
            csv=f"paper_tables/{contract.SCALE_TABLE}.csv",
            figures=[report(f"figures/{f}.png", caption="report/scale_figure.rst", category="Scale study")
                     for f in SCALE_FIGURES] + [f"figures/{f}.pdf" for f in SCALE_FIGURES],
        params:
            normlab=NORMLAB,
            tidy=lambda wc, input: str(Path(input.tidy[0]).parent),
            stats=lambda wc, input: str(Path(input.stats[0]).parent),
            tables=lambda wc, output: str(Path(output.csv).parent),
            figures=lambda wc, output: str(Path(output.figures[0]).parent),
            note=norm_options_text(CFG, "rbn"),
            config_sha256=CONFIG_SHA256,
            captions=CAPTIONS,
        log:
            "logs/paper/scale_study.log",
        group: ANALYSIS_GROUP
        resources:
            **job_resources("scale_study"),
        conda:
            "../envs/normlab.yaml"
        shell:
            "{params.normlab} scale --tidy {params.tidy} --stats {params.stats} --points {input.points} "
            "--tables {params.tables} --figures {params.figures} --note {params.note:q} "
            "--config-sha256 {params.config_sha256} > {log} 2>&1"
