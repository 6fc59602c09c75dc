"""Write `snakemake.params.text` to the rule's single output, atomically (a Snakemake script)."""

import sys
from pathlib import Path

# normlab from the workflow's own source tree (workflows/scripts/ -> the repository's src/), as every
# rule's shell command takes it (common.smk: SRC): the conda environment holds only the dependencies
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from normlab.atomic import atomic_write_text  # noqa: E402 (not torch: this runs once per cell)

with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by Snakemake)
    atomic_write_text(snakemake.output[0], snakemake.params.text)  # noqa: F821
    print(f"wrote {snakemake.output[0]}", file=log)  # noqa: F821
