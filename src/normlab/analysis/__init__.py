"""normlab.analysis: from finished runs to the papers' tables, figures and the claims report.

The workflow (`workflows/analysis.smk`, `workflows/paper.smk`) drives these steps, each a `normlab`
sub-command.  Before them, `normlab probe` (`normlab.tid.probe`: it runs the model, so it lives beside
the TID measures, not here) turns one finished run into its TID decomposition and conditioning.

    normlab collect  every run of a manifest -> tidy tables in results/tidy/ (`tidy.py`)
    normlab stats    tidy tables -> seed statistics and paired comparisons (`stats.py`)
    normlab tables   -> paper_tables/*.md|tex|csv (`tables.py`)
    normlab claims   -> paper_tables/claims.md (`claims.py`)
    normlab figures  -> figures/*.pdf|png (`figures.py`)

Everything after `collect` reads only the tidy tables, never run folders.
"""
