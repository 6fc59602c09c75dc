"""Write one cell's run config (a Snakemake script: `snakemake.params.run_config` -> output YAML)."""

import sys

import yaml

from normlab.train.checkpoint import atomic_write

with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by Snakemake)
    sys.stderr = log
    text = "# written by the workflow (rule run_config); run alone with: normlab train --config THIS --out DIR\n"
    text += yaml.safe_dump(dict(snakemake.params.run_config), sort_keys=True)  # noqa: F821
    atomic_write(snakemake.output[0], lambda f: f.write(text.encode()))  # noqa: F821
