"""normlab.analysis: from finished runs to the papers' tables, figures and the claims report.

The workflow (`workflows/analysis.smk`, `workflows/paper.smk`) drives these steps, each a `normlab`
sub-command:

    normlab probe    one finished run -> TID decomposition (floor / batch structure / lag) and
                     layer-wise conditioning (`probes.py`)
    normlab collect  every run of a manifest -> tidy tables in results/tidy/ (`tidy.py`)
    normlab stats    tidy tables -> seed statistics and paired comparisons (`stats.py`)
    normlab tables   -> paper_tables/*.md|tex|csv (`tables.py`)
    normlab claims   -> paper_tables/claims.md (`claims.py`)
    normlab figures  -> figures/*.pdf|png (`figures.py`)

Everything after `collect` reads only the tidy tables, never run folders.
"""
