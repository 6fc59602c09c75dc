"""Write `snakemake.params.text` to the rule's single output, atomically (a Snakemake script)."""

from normlab.train.checkpoint import atomic_write

with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by Snakemake)
    atomic_write(snakemake.output[0], lambda f: f.write(snakemake.params.text.encode()))  # noqa: F821
    print(f"wrote {snakemake.output[0]}", file=log)  # noqa: F821
