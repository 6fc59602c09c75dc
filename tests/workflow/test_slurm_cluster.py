"""The local SLURM fixture, exercised with a toy two-rule workflow through snakemake's SLURM executor."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest

from . import slurm_cluster as sc

# the flags a cluster without an accounting database needs (see docs: local_slurm.md)
SLURM_LOCAL_FLAGS = [
    "--slurm-status-command",
    "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks",
    "1",
]
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/")

TOY = textwrap.dedent("""\
    localrules: all

    rule all:
        input: "gpu.txt"

    # each job records what SLURM told it; the env of the job step is the one the rule's shell sees
    rule cpu:
        output: "cpu.txt"
        shell: "env | grep -E '^(SLURM_JOB_ID|CUDA_VISIBLE_DEVICES)=' | sort > {output}"

    rule gpu:
        input: "cpu.txt"
        output: "gpu.txt"
        resources: gpu=1
        shell: "env | grep -E '^(SLURM_JOB_ID|CUDA_VISIBLE_DEVICES)=' | sort > {output}"
    """)


def submitted_jobs(snakemake_log: str) -> dict[str, str]:
    """{rule: SLURM job id} from the executor's 'Job N has been submitted with SLURM jobid M' lines."""
    return {rule: job for job, rule in SUBMITTED.findall(snakemake_log)}


def env_file(path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_not_root_is_a_skip_reason(monkeypatch):
    monkeypatch.setattr(sc.os, "geteuid", lambda: 1000)
    with pytest.raises(sc.SlurmUnavailable, match="needs root"), sc.local_slurm():
        pass


def test_config_keeps_every_path_under_its_folder(tmp_path):
    spec = "NodeName=n1 CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=8000"
    conf = sc.slurm_conf(tmp_path, "n1", spec)
    paths = re.findall(r"=(?:socket=)?(/\S+)", conf)
    assert paths and all(p.startswith(str(tmp_path)) for p in paths), paths
    assert f"{spec} NodeAddr=127.0.0.1 Gres=gpu:1" in conf
    assert "PartitionName=debug Nodes=n1 Default=YES" in conf
    assert "NodeName=n1 Name=gpu File=/dev/null" in sc.gres_conf("n1")


@pytest.mark.slow
@pytest.mark.slurm
def test_node_is_up_with_a_gpu(slurm_cluster):
    print(f"local SLURM usable after {slurm_cluster.startup_s:.1f} s")
    out = slurm_cluster.run("sinfo", "-h", "-N", "-o", "%N|%G|%t").stdout.split()
    assert out, "sinfo lists no node"
    node, gres, state = out[0].split("|")
    assert node == slurm_cluster.node
    assert gres.startswith("gpu:1"), f"the node should offer the fake gpu:1, sinfo says {gres!r}"
    assert state.rstrip("*~#") in {"idle", "mix", "alloc"}, state


@pytest.mark.slow
@pytest.mark.slurm
def test_toy_workflow_goes_through_sbatch_with_a_gpu_request(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(TOY)
    # an inherited CUDA_VISIBLE_DEVICES would reach the CPU job through sbatch's --export=ALL
    env = {k: v for k, v in slurm_cluster.env.items() if k != "CUDA_VISIBLE_DEVICES"}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--executor",
        "slurm",
        "--jobs",
        "2",
        *SLURM_LOCAL_FLAGS,
        "--default-resources",
        "runtime=5",
        "mem_mb=500",
    ]
    r = slurm_cluster.run_workflow(cmd, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, f"snakemake failed:\n{r.stderr[-4000:]}"

    jobs = submitted_jobs(r.stderr)
    assert set(jobs) == {"cpu", "gpu"}, f"expected both rules submitted with sbatch, got {jobs}\n{r.stderr[-3000:]}"
    ctld_log = slurm_cluster.ctld_log()
    for rule, job_id in jobs.items():
        # the controller's own record of the submission, independent of what snakemake printed
        assert f"_slurm_rpc_submit_batch_job: JobId={job_id} " in ctld_log, f"{rule}: job {job_id} not in slurmctld.log"
        info = slurm_cluster.job(job_id)
        assert info.get("JobState") == "COMPLETED", f"{rule}: {info}"
        assert info.get("WorkDir") == str(tmp_path)

    # the GPU request reached sbatch as a GPU (--gpus=1), and the job was handed the (fake) device
    assert "gpu:1" in slurm_cluster.job(jobs["gpu"]).get("TresPerJob", ""), slurm_cluster.job(jobs["gpu"])
    assert "gpu" not in slurm_cluster.job(jobs["cpu"]).get("TresPerJob", "")
    cpu, gpu = env_file(tmp_path / "cpu.txt"), env_file(tmp_path / "gpu.txt")
    assert cpu["SLURM_JOB_ID"] == jobs["cpu"] and gpu["SLURM_JOB_ID"] == jobs["gpu"]
    assert gpu.get("CUDA_VISIBLE_DEVICES") == "0"
    assert "CUDA_VISIBLE_DEVICES" not in cpu
