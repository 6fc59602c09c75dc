"""What each job runs and asks for: the rules' commands (normlab from the workflow's source tree, torchrun
for several GPUs, the conda env everywhere), GPUs per setting, memory and runtime per attempt, the
SLURM site settings, and `--profile slurm` as a user types it."""

from __future__ import annotations

import os
import re
import shlex

import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

from normlab import workflow
from normlab.workflow import (
    GPU_RULES,
    PATHS,
    SITE_SETTINGS,
    WorkflowConfigError,
    check_gpu_partition,
    gpu_request,
    gpus,
    load,
    normlab_command,
    per_attempt,
    rule_resources,
    site_settings,
    slurm_resources,
)

from .snakemake_run import BIN, ROOT, job_counts, snakemake

SCHEMA = ROOT / "workflows/schemas/config.schema.yaml"
SRC = str((ROOT / "src").resolve())
ANALYSIS_GROUP = "analysis"
# the rules that go to SLURM one job each; every other rule is local or in the one analysis group job
SUBMITTED_ALONE = {"prepare", "train", "probe"}


def config(name="test"):
    return yaml.safe_load((ROOT / f"config/{name}.yaml").read_text())


# --- resources, GPUs, site settings (normlab.workflow) ---------------------------------------------


def test_memory_and_runtime_grow_with_each_attempt():
    cfg, _, _ = load(config("paper"), SCHEMA)
    train = rule_resources(cfg, "train")
    assert [train["mem_mb"](None, attempt) for attempt in (1, 2, 3)] == [32000, 64000, 96000]
    assert [train["runtime"](None, attempt) for attempt in (1, 2)] == [1440, 2880]
    collect = rule_resources(cfg, "collect")  # its own entry, over `default`
    assert (collect["mem_mb"].base, collect["runtime"].base) == (16000, 60)
    assert rule_resources(cfg, "tables")["mem_mb"].base == 4000  # `default` only
    assert per_attempt(7)(None, attempt=4) == 28


def test_gpus_are_per_dataset_with_a_default_of_one_and_variants_inherit_them():
    raw = config()
    raw["datasets"]["wnut16"]["gpus"] = 2
    raw["datasets"]["fashion_mnist"]["gpus"] = 0
    raw["datasets"]["wnut16.other"] = {"train": {"max_steps": 20}}
    raw["grids"]["ln_family"]["datasets"].append("wnut16.other")
    cfg, cells, _ = load(raw, SCHEMA)
    per_setting = gpus(cfg)
    assert per_setting["wnut16"] == per_setting["wnut16.other"] == per_setting["wnut16.depth-2"] == 2
    assert per_setting["fashion_mnist"] == 0
    assert set(gpus(load(config(), SCHEMA)[0]).values()) == {1}
    # the training job takes them all, the probe one, the CPU-only setting none
    assert [gpu_request(rule, 2) for rule in ("train", "probe", "collect")] == [2, 1, 0]
    assert [gpu_request(rule, 0) for rule in GPU_RULES] == [0, 0]
    raw["datasets"]["wnut16"]["gpus"] = -1
    with pytest.raises(WorkflowConfigError, match="datasets.wnut16.gpus"):
        load(raw, SCHEMA)


def test_normlab_runs_from_the_source_tree_with_torchrun_for_several_processes(tmp_path):
    src = tmp_path / "a dir" / "src"
    assert normlab_command(src) == f"env PYTHONPATH={shlex.quote(str(src))} python -m normlab"
    assert normlab_command(src, 2) == (f"env PYTHONPATH={shlex.quote(str(src))} torchrun --standalone "
                                       "--nproc_per_node 2 -m normlab")
    assert shlex.split(normlab_command(src))[1] == f"PYTHONPATH={src}"  # the space survives the shell


def test_site_settings_come_from_the_untracked_file_and_the_environment_overrides_it(tmp_path):
    site = tmp_path / "site.yaml"
    assert site_settings(site, {}) == {}  # neither: SLURM's defaults
    site.write_text("account: lab\ngpu_partition: gpu\ncpu_partition: ''\n")
    assert site_settings(site, {}) == {"account": "lab", "gpu_partition": "gpu"}
    env = {SITE_SETTINGS["gpu_partition"]: "a100", SITE_SETTINGS["cpu_partition"]: "cpu",
           SITE_SETTINGS["account"]: ""}  # an empty variable does not override
    found = site_settings(site, env)
    assert found == {"account": "lab", "gpu_partition": "a100", "cpu_partition": "cpu"}
    assert slurm_resources(found, 2) == {"slurm_partition": "a100", "slurm_account": "lab"}
    assert slurm_resources(found, 0) == {"slurm_partition": "cpu", "slurm_account": "lab"}
    assert slurm_resources({}, 1) == {}
    site.write_text("gpu_partiton: gpu\n")
    with pytest.raises(WorkflowConfigError, match="unknown key.s. gpu_partiton; valid keys: account, gpu_partition"):
        site_settings(site, {})
    site.write_text("gpu_partition: [gpu\n")
    with pytest.raises(WorkflowConfigError, match="is not valid YAML"):
        site_settings(site, {})


def test_gpu_jobs_without_a_gpu_partition_are_refused_naming_the_setting():
    check_gpu_partition({"gpu_partition": "gpu"}, 5)
    check_gpu_partition({}, 0)  # nothing needs a GPU (e.g. only the analysis is left)
    with pytest.raises(WorkflowConfigError) as err:
        check_gpu_partition({"account": "lab"}, 3)
    message = str(err.value)
    assert "\n" not in message and "3 job(s) need a GPU" in message
    assert "slurm/site.yaml" in message and "NORMLAB_SLURM_GPU_PARTITION" in message


def test_a_slurm_job_step_that_starts_inside_the_workdir_does_not_nest_it(tmp_path):
    """A SLURM job parses the workflow twice, the job step already inside the config's workdir."""
    assert workflow.started_in(tmp_path, ".test_workflow") == tmp_path  # the main process, the job
    assert workflow.started_in(tmp_path / ".test_workflow", ".test_workflow") == tmp_path  # its job step
    assert workflow.started_in(tmp_path / "a" / "b", "a/b") == tmp_path
    assert workflow.started_in(tmp_path / "x", str(tmp_path / "x")) == tmp_path / "x"  # absolute: as given
    assert workflow.started_in(tmp_path, None) == tmp_path
    cache = workflow.with_absolute_data_cache({"workdir": "w", "data_cache": "dc"}, tmp_path)["data_cache"]
    assert cache == str(tmp_path / "dc")
    assert workflow.with_absolute_data_cache({"data_cache": "dc"}) == {"data_cache": "dc"}  # no workdir: as is


def test_the_site_file_is_ignored_by_git_and_its_template_is_tracked():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/slurm/site.yaml" in ignored
    template = yaml.safe_load((ROOT / "slurm/site.example.yaml").read_text())
    assert set(template) == set(SITE_SETTINGS) and not any(template.values())


# --- the rules, as Snakemake parses them ------------------------------------------------------------


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """The parsed rules of the test configuration (it has every rule: the sweep adds scale_study), and
    the workflow."""
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    with SnakemakeApi(OutputSettings()) as api:
        parsed = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[ROOT / "config/test.yaml"]),
            snakefile=ROOT / "Snakefile",
            workdir=tmp_path_factory.mktemp("parsed"),
        )._workflow
        yield {rule.name: rule for rule in parsed.rules}, parsed


def test_every_rule_runs_normlab_from_the_workflows_source_tree_in_the_conda_env(parsed):
    rules, _ = parsed
    assert len(rules) >= 17
    env_file = (ROOT / "workflows" / "../envs/normlab.yaml").resolve()
    for name, rule in rules.items():
        if name == "all":
            continue
        assert rule.conda_env == "../envs/normlab.yaml" and env_file.exists(), name
        if rule.is_script:  # the scripts put the source tree first on sys.path themselves
            script = (ROOT / "workflows" / rule.script).read_text()
            assert 'parents[2] / "src"' in script, name
            continue
        command = rule.shellcmd.strip()
        assert not re.match(r"normlab\s", command), f"{name}: a bare `normlab` ({command[:40]})"
        assert command.startswith("{params.normlab} "), f"{name}: {command[:60]}"
        launcher = rule.params.get("normlab")
        if name == "train":  # per setting: python -m normlab or torchrun
            assert callable(launcher)
        else:
            assert launcher == f"env PYTHONPATH={SRC} python -m normlab", name


def test_only_preparation_training_and_probes_are_cluster_jobs_of_their_own(parsed):
    rules, wf = parsed
    local = set(wf._localrules)
    for name, rule in rules.items():
        if name in SUBMITTED_ALONE:
            assert name not in local and rule._group is None, name
        else:
            assert name in local or rule._group == ANALYSIS_GROUP, f"{name}: a queued job of its own"
    assert {n for n, r in rules.items() if r._group == ANALYSIS_GROUP} >= {"collect", "stats", "figures", "notebook"}


# --- dry runs: the profile as typed, the attempt, the site settings -----------------------------------


def job_blocks(output: str, rule: str) -> list[str]:
    """The dry run's block of every job of ``rule`` (from `rule NAME:` to its shell command)."""
    return re.findall(rf"(?ms)^(?:local)?rule {rule}:\n.*?^Shell command: [^\n]*", output)


def resources_of(block: str) -> dict[str, str]:
    line = re.search(r"(?m)^\s+resources: (.*)$", block).group(1)
    return dict(item.split("=", 1) for item in line.split(", "))


def test_the_profile_as_typed_runs_the_paper_grid_with_gpu_requests():
    """`snakemake -n --cores 8 --profile slurm` from the repository root: the profile's configfile is the
    paper configuration; every training and probe job asks for its GPU and its first attempt's memory
    and runtime."""
    r = snakemake("-n", "--cores", "8", "--profile", "slurm")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    cfg, cells, _ = workflow.load_file(ROOT / "config/paper.yaml", SCHEMA)
    counts = job_counts(out)
    assert counts["train"] == counts["probe"] == len(cells) == 695
    trains = job_blocks(out, "train")
    assert len(trains) == len(cells)
    for block in trains:
        res = resources_of(block)
        dataset = re.search(r"wildcards: dataset=([^,]+),", block).group(1)
        assert res["gpu"] == str(gpus(cfg)[dataset]) == "1"
        assert (res["mem_mb"], res["runtime"], res["cpus_per_gpu"]) == ("32000", "1440", "4")
        assert "python -m normlab train" in block
    assert {resources_of(b)["gpu"] for b in job_blocks(out, "probe")} == {"1"}
    ln_family = [b for b in trains if "dataset=iwslt14_de_en.ln_family," in b]
    assert ln_family  # its run configs say update_freq 2 (tests/test_paper_config.py)


def test_a_retry_asks_for_more_memory_and_time_and_the_site_partitions_reach_the_jobs(tmp_path):
    target = PATHS.of("probe_dir", workflow.Cell("ptb", "pre", "bn", 1)) + "/probe.json"
    env = {SITE_SETTINGS["gpu_partition"]: "gpuq", SITE_SETTINGS["cpu_partition"]: "cpuq",
           SITE_SETTINGS["account"]: "lab"}
    r = snakemake(target, "-n", "--cores", "8", "--profile", "slurm", "--attempt", "2",
                  "--directory", str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    (train,), (probe,), (prepare,) = job_blocks(out, "train"), job_blocks(out, "probe"), job_blocks(out, "prepare")
    assert {k: resources_of(train)[k] for k in ("mem_mb", "runtime", "gpu", "slurm_partition", "slurm_account")} == {
        "mem_mb": "64000", "runtime": "2880", "gpu": "1", "slurm_partition": "gpuq", "slurm_account": "lab"}
    assert (resources_of(probe)["runtime"], resources_of(probe)["slurm_partition"]) == ("240", "gpuq")
    assert (resources_of(prepare)["mem_mb"], resources_of(prepare)["slurm_partition"]) == ("64000", "cpuq")


def test_a_user_configfile_replaces_the_profiles(tmp_path):
    r = snakemake("-n", "--profile", "slurm", "--configfile", "config/test.yaml", "--config",
                  f"data_cache={tmp_path}/cache", workdir=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert job_counts(r.stdout)["train"] == 48  # the test grid alone, not merged with the paper one


def test_without_a_gpu_partition_the_slurm_executor_stops_at_start_with_one_line(tmp_path):
    if site_settings(ROOT / workflow.SITE_FILE, {}).get("gpu_partition"):
        pytest.skip(f"this checkout's {workflow.SITE_FILE} sets a GPU partition")
    env = {var: "" for var in SITE_SETTINGS.values()}
    target = PATHS.of("run_dir", workflow.Cell("wnut16", "post", "ln", 1)) + "/final.json"
    r = snakemake(target, "--cores", "1", "--profile", "slurm", "--configfile", "config/test.yaml",
                  "--config", f"data_cache={tmp_path}/cache", workdir=tmp_path, env=env, timeout=300)
    assert r.returncode != 0
    assert "1 job(s) need a GPU but no GPU partition is set: put `gpu_partition: NAME` in slurm/site.yaml" in r.stderr
    assert not (tmp_path / ".test_workflow" / "results").exists() and not (tmp_path / "cache").exists()  # nothing ran
    assert "submitted with SLURM jobid" not in r.stderr
