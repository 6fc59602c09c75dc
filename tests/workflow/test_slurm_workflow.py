"""The test configuration through `--profile slurm` on a real single-node SLURM, against a local run.

Two copies of the repository (tracked and non-ignored files) run the workflow's default target with
config/test.yaml: one with `snakemake --cores 2`, one with `--profile slurm` plus the overrides a
cluster without an accounting database needs, and the site's GPU partition as a user sets it
(NORMLAB_SLURM_GPU_PARTITION).  Both use one data cache in the test's tmp dir, whose raw downloads are
linked from $NORMLAB_DATA/raw or ./data_cache/raw when those exist (otherwise the workflow's fetch rule
downloads them).  The SLURM run must submit every preparation, training and probe job with sbatch and
the whole analysis as one group job, ask for a GPU for every training and probe job (and only those),
in the GPU partition, and reproduce each run's final metrics exactly (CPU training is deterministic).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from normlab.workflow import GPU_RULES, SITE_SETTINGS

from .test_slurm_cluster import SLURM_LOCAL_FLAGS

REPO = Path(__file__).resolve().parents[2]
CONFIG = "config/test.yaml"
WORKDIR = yaml.safe_load((REPO / CONFIG).read_text())["workdir"]  # where the config writes, in each copy
RULE_RAN = re.compile(r"^\s*(local)?rule (\w+):$", re.M)  # a group job's members are indented
# "Job N has been submitted with SLURM jobid M (log: .../rule_NAME/... or .../group_NAME/...)"; a group's
# NAME is its id and up to five member rules, e.g. analysis_baselines_claims_collect_figures_notebook_...
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*?/(rule|group)_([^/\s]+)/")
ANALYSIS_GROUP = "analysis"  # workflows/analysis.smk: the analysis rules, one SLURM job together
GPU_PARTITION = "debug"  # the test cluster's one partition (it has the fake GPU)
# what a run's final.json says about its result; wall time, memory and versions may differ
FINAL_KEYS = (
    "status",
    "steps",
    "epochs",
    "tokens_seen",
    "valid",
    "test",
    "primary_metric",
    "diverged_at_step",
    "config_hash",
    "n_params",
    "device",
)


def group_id(name: str) -> str:
    """The group of a group job's SLURM log name (``<group>_<rule>_<rule>...``)."""
    return ANALYSIS_GROUP if name == ANALYSIS_GROUP or name.startswith(ANALYSIS_GROUP + "_") else name


def test_the_submission_pattern_reads_rule_and_group_jobs():
    """The executor plugin's own log lines (snakemake-executor-plugin-slurm 2.x), a group with > 5 rules."""
    lines = (
        "Job 12 has been submitted with SLURM jobid 301 (log: /r/.snakemake/slurm_logs/rule_train/"
        "wnut16_post_bn_1/301.log).\n"
        "Job 40 has been submitted with SLURM jobid 302 (log: /r/.snakemake/slurm_logs/group_analysis_baselines_"
        "claims_collect_figures_notebook_.../302.log).\n"
    )
    found = [(j, k, group_id(n) if k == "group" else n) for j, k, n in SUBMITTED.findall(lines)]
    assert found == [("301", "rule", "train"), ("302", "group", ANALYSIS_GROUP)]


def copy_repo(dest: Path) -> Path:
    """The files git would commit (tracked + untracked, not ignored): no .venv, caches or results."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True, capture_output=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the work tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(src.read_bytes())
    return dest


def seed_cache(cache: Path) -> Path:
    """A fresh data cache whose verified downloads are links to an existing cache's, when there is one."""
    raw = cache / "raw"
    raw.mkdir(parents=True)
    for source in (os.environ.get("NORMLAB_DATA"), REPO / "data_cache"):
        if source and (Path(source) / "raw").is_dir():
            for f in (Path(source) / "raw").iterdir():
                if f.is_file():
                    (raw / f.name).symlink_to(f.resolve())
            break
    return cache


def profile_file(profile_dir: Path) -> Path:
    (path,) = [p for p in profile_dir.iterdir() if re.fullmatch(r"(profile|config)(\.v\d+\+)?\.yaml", p.name)]
    return path


def cap_gpu_cpus(profile_dir: Path, cpus: int) -> None:
    """The profile asks `cpus_per_gpu` per training job; a node with fewer CPUs could never run it.

    Then ask for one: the test config trains with one thread, and the node's other CPUs stay free for
    the jobs that need no GPU (the node has a single fake GPU)."""
    path = profile_file(profile_dir)
    profile = yaml.safe_load(path.read_text())
    for res in [profile.get("default-resources") or {}, *(profile.get("set-resources") or {}).values()]:
        if int(res.get("cpus_per_gpu", 0)) > cpus:
            res["cpus_per_gpu"] = 1
    path.write_text(yaml.safe_dump(profile, sort_keys=False))


def snakemake(
    repo: Path, cache: Path, *args: str, env: dict[str, str], timeout: float, cluster=None
) -> subprocess.CompletedProcess:
    # the workflow calls `normlab` and the interpreter that runs Snakemake: both from this venv
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    env.pop("CUDA_VISIBLE_DEVICES", None)  # both runs on the CPU, whatever this machine has
    cmd = [sys.executable, "-m", "snakemake", "--configfile", CONFIG, "--config", f"data_cache={cache}", *args]
    if cluster is not None:  # a run that waits on the scheduler fails with the queue's state
        r = cluster.run_workflow(cmd, cwd=repo, env=env, timeout=timeout)
    else:
        r = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"`snakemake {' '.join(args)}` failed in {repo}:\n{r.stderr[-5000:]}"
    return r


def finals(repo: Path) -> dict[str, str]:
    out, root = {}, repo / WORKDIR
    for path in sorted((root / "results" / "runs").rglob("final.json")):
        final = json.loads(path.read_text())
        # json.dumps compares floats exactly and NaN equal to NaN (a diverged run's metrics)
        out[str(path.parent.relative_to(root))] = json.dumps({k: final.get(k) for k in FINAL_KEYS}, sort_keys=True)
    return out


def products(repo: Path) -> set[str]:
    root = repo / WORKDIR
    return {
        str(p.relative_to(root))
        for d in ("paper_tables", "figures", "notebooks/executed")
        for p in (root / d).rglob("*")
        if p.is_file()
    }


@pytest.mark.slow
@pytest.mark.slurm
def test_test_config_on_slurm_matches_the_local_run(slurm_cluster, tmp_path):
    cache = seed_cache(tmp_path / "data_cache")
    local = copy_repo(tmp_path / "local")
    on_slurm = copy_repo(tmp_path / "slurm")
    cpus = int(slurm_cluster.run("sinfo", "-h", "-N", "-n", slurm_cluster.node, "-o", "%c").stdout.split()[0])
    cap_gpu_cpus(on_slurm / "slurm", cpus)

    # the local run first: it also fetches and prepares the data both runs share
    r_local = snakemake(local, cache, "--cores", "2", env=dict(os.environ), timeout=1800)
    r_slurm = snakemake(
        on_slurm, cache, "--cores", "2", "--profile", "slurm", *SLURM_LOCAL_FLAGS,
        env={**slurm_cluster.env, SITE_SETTINGS["gpu_partition"]: GPU_PARTITION},
        # the node's one (fake) GPU runs the 96 training and probe jobs one at a time, ~30 s each here
        timeout=5400,
        cluster=slurm_cluster,
    )

    # the SLURM run ran the local run's jobs (its data was prepared by then); each preparation, training
    # and probe job was one sbatch job, and the analysis one group job
    local_jobs = Counter(rule for _, rule in RULE_RAN.findall(r_local.stderr))
    slurm_blocks = RULE_RAN.findall(r_slurm.stderr)
    slurm_jobs = Counter(rule for _, rule in slurm_blocks)
    for rule in set(local_jobs) - {"fetch", "prepare"}:
        assert slurm_jobs[rule] >= local_jobs[rule], f"{rule}: {local_jobs[rule]} local, {slurm_jobs[rule]} SLURM"
    submitted = [(job_id, kind, group_id(name) if kind == "group" else name)
                 for job_id, kind, name in SUBMITTED.findall(r_slurm.stderr)]
    alone = Counter(name for _, kind, name in submitted if kind == "rule")
    groups = Counter(name for _, kind, name in submitted if kind == "group")
    assert set(alone) <= {"prepare", *GPU_RULES}, f"rules submitted alone: {alone}"
    for rule in GPU_RULES:
        assert alone[rule] == slurm_jobs[rule] >= local_jobs[rule] > 0, f"the {rule} jobs did not all go to SLURM"
    assert groups == {ANALYSIS_GROUP: 1}, f"the analysis was not one group job: {groups}"
    ctld_log = slurm_cluster.ctld_log()
    for job_id, _, name in submitted:
        assert f"_slurm_rpc_submit_batch_job: JobId={job_id} " in ctld_log, f"{name}: job {job_id} not in slurmctld.log"
    # the GPU requests reached sbatch for the training and probe jobs, and only those, in the GPU partition
    for job_id, _, name in submitted:
        info = slurm_cluster.job(job_id)
        tres = info.get("TresPerJob", "")
        assert ("gpu:1" in tres) == (name in GPU_RULES), f"job {job_id} ({name}): TresPerJob={tres!r}"
        if name in GPU_RULES:
            assert info.get("Partition") == GPU_PARTITION, f"job {job_id} ({name}): {info.get('Partition')}"
    assert not slurm_cluster.run("squeue", "-h").stdout.strip(), "jobs left in the queue after the workflow"

    # the same runs with the same results, and the same tables, figures and notebooks
    local_finals, slurm_finals = finals(local), finals(on_slurm)
    assert local_finals and local_finals.keys() == slurm_finals.keys()
    differ = [run for run in local_finals if local_finals[run] != slurm_finals[run]]
    assert not differ, f"final metrics differ between the local and the SLURM run for {differ}"
    assert products(local) and products(local) == products(on_slurm)
