"""Write `snakemake.params.text` to the rule's single output, atomically (a Snakemake script)."""

from normlab.atomic import atomic_write_text  # not torch: this runs once per cell

with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by Snakemake)
    atomic_write_text(snakemake.output[0], snakemake.params.text)  # noqa: F821
    print(f"wrote {snakemake.output[0]}", file=log)  # noqa: F821
