"""A real single-node SLURM cluster on this machine, for the workflow tests (Debian, as root).

`local_slurm()` is a context manager (the `slurm_cluster` fixture in conftest.py wraps it):

- installs `slurmctld slurmd slurm-client munge` with apt when they are missing;
- writes its own slurm.conf / gres.conf (one node: this machine's CPUs and memory as `slurmd -C`
  reports them, plus a fake `gpu:1` so that GPU requests go through the scheduler for real) and
  runs its own munged on its own socket, all under one folder (`/var/spool/slurm-local`), so that
  nothing in /etc/munge or a system munged is touched; clients find the cluster through
  `SLURM_CONF` (in `SlurmCluster.env`).  One exception: snakemake's slurm-jobstep plugin removes
  every `SLURM_*` variable (SLURM_CONF too) before its `srun` inside the job, so that srun only finds
  the compiled-in /etc/slurm/slurm.conf; when that file is absent it becomes a symlink to ours for
  the duration, and an existing one that is not ours is an error;
- starts munged / slurmctld / slurmd only when they are not already running (a slurmctld it starts
  clears the state an earlier life saved: a job recorded as running when that life ended would
  otherwise hold the node's CPUs or its one GPU for good), waits until `sinfo`
  shows the node usable (resuming it if an earlier run left it drained or down), yields, and on exit
  stops only the daemons it started, by their pids (cancelling the jobs left on a controller it
  started first).

When SLURM cannot be had here (not root, no apt, apt fails) it raises `SlurmUnavailable`, which the
fixture turns into a skip; a cluster that was installed but will not come up is an error, with the
daemons' log tails in the message.  If a slurmctld that this module did not start is already running,
it is used as the clients find it (`SLURM_CONF` or /etc/slurm/slurm.conf) and nothing is started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ROOT = Path("/var/spool/slurm-local")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")  # where srun looks when SLURM_CONF is unset
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
# the binaries that tell whether PACKAGES are installed
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "munged", "mungekey")
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USABLE_STATES = {"idle", "mix", "mixed", "alloc", "allocated", "comp", "completing"}
RESUMABLE_STATES = {"drain", "drained", "draining", "drng", "down", "inval", "fail", "failing"}


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or run on this machine (a reason to skip, not a failure)."""


@dataclass
class Daemon:
    """A daemon this module started in the foreground: stopped by its pid, and only it."""

    name: str
    proc: subprocess.Popen
    out: Path  # its stdout/stderr (start-up errors land here before its log file exists)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)  # slurmctld saves its state on SIGTERM
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class SlurmCluster:
    """What a test needs: the client environment, the node, and where the logs are."""

    root: Path
    env: dict[str, str]  # os.environ + SLURM_CONF (when the cluster is ours): pass to sbatch/snakemake
    node: str
    started: list[Daemon] = field(default_factory=list)
    startup_s: float = 0.0
    log_offset: int = 0  # slurmctld.log's size when the fixture began: earlier lives' lines are not ours

    def run(self, *cmd: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a SLURM client (sinfo, squeue, scontrol, ...) against this cluster."""
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def job(self, job_id: int | str) -> dict[str, str]:
        """`scontrol show job` as a dict (finished jobs stay visible for MinJobAge, 2 h in our config)."""
        out = self.run("scontrol", "show", "job", "--oneliner", str(job_id)).stdout
        return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)

    def ctld_log(self) -> str:
        """The controller's log since the fixture began (job ids restart at 1 after a cleared state)."""
        path = self.root / "slurmctld.log"
        if not path.exists():
            return ""
        with open(path, "rb") as fh:
            fh.seek(self.log_offset)
            return fh.read().decode(errors="replace")

    def report(self) -> str:
        """What the scheduler thinks now: the queue with pending reasons, the node, the logs' tails."""
        parts = []
        for cmd in (("squeue", "-o", "%A %j %T %r %b"), ("sinfo", "-N", "-o", "%N %t %G %C %E")):
            r = self.run(*cmd, check=False)
            parts.append(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        parts += [f"--- {p}\n{_tail(p)}" for p in (self.root / "slurmctld.log", self.root / "slurmd.log")]
        return "\n".join(parts)

    def run_workflow(self, cmd: list[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
        """subprocess.run for a workflow submitting here; past `timeout`, a failure that shows why it waited."""
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            raise AssertionError(
                f"`{' '.join(cmd[:4])} ...` did not finish in {timeout:.0f} s.\n"
                f"--- its stderr (tail)\n{err[-3000:]}\n{self.report()}"
            ) from None


# --------------------------------------------------------------------------------------------------
# install


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + SBIN_PATH)


def _missing_binaries() -> list[str]:
    return [b for b in BINARIES if _which(b) is None]


def ensure_installed() -> None:
    """Install Debian's SLURM and munge when missing; SlurmUnavailable when that cannot be done here."""
    if not _missing_binaries():
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            f"SLURM is not installed ({', '.join(_missing_binaries())} missing) and installing it needs root"
        )
    apt = _which("apt-get")
    if apt is None:
        raise SlurmUnavailable("SLURM is not installed and apt-get is unavailable (Debian/Ubuntu only)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # wait for a dpkg lock held by another apt instead of failing at once
    install = [apt, "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", *PACKAGES]
    r = subprocess.run(install, env=env, capture_output=True, text=True)
    if r.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run([apt, "-o", "DPkg::Lock::Timeout=300", "update", "-qq"], env=env, capture_output=True)
        r = subprocess.run(install, env=env, capture_output=True, text=True)
    if r.returncode != 0 or _missing_binaries():
        raise SlurmUnavailable(
            f"`apt-get install {' '.join(PACKAGES)}` failed (rc {r.returncode}): {(r.stderr or r.stdout)[-500:]}"
        )


# --------------------------------------------------------------------------------------------------
# configuration


def node_line() -> tuple[str, str]:
    """(node name, `NodeName=... RealMemory=...` as `slurmd -C` sees this machine)."""
    out = subprocess.run([_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("NodeName="))
    return line.split()[0].split("=", 1)[1], line


def slurm_conf(root: Path, node: str, node_spec: str) -> str:
    munge_socket = root / "munge" / "munge.socket"
    # NodeAddr / the controller's address are loopback: the test needs no resolvable hostname
    return f"""\
# Written by tests/workflow/slurm_cluster.py: a single-node test cluster; every path is under {root}.
ClusterName=normlab-test
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
# no cgroups: works in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
# no accounting database: sacct cannot answer, poll squeue (--slurm-status-command squeue)
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
# keep finished jobs queryable (`scontrol show job`) for a whole test session, not the default 300 s
MinJobAge=7200
GresTypes=gpu
{node_spec} NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def gres_conf(node: str) -> str:
    # A "GPU" the scheduler can hand out: jobs asking for one see CUDA_VISIBLE_DEVICES=0 but no device,
    # so code with device "auto" still runs on the CPU.
    return f"AutoDetect=off\nNodeName={node} Name=gpu File=/dev/null\n"


def _link_system_conf(conf: Path) -> bool:
    """Point /etc/slurm/slurm.conf at `conf`; True when this call created the link (remove it after)."""
    if SYSTEM_CONF.is_symlink() and SYSTEM_CONF.resolve() == conf.resolve():
        return False
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        raise RuntimeError(
            f"{SYSTEM_CONF} exists and is not this fixture's. Inside a job, snakemake's "
            "slurm-jobstep plugin drops SLURM_CONF, so its srun would read that file instead of "
            f"the test cluster's {conf}. Move it aside while the `slurm` tests run."
        )
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(conf)
    return True


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --------------------------------------------------------------------------------------------------
# daemons


def _pid_from(pidfile: Path, comm: str) -> int | None:
    """The pid in `pidfile` when that process is alive and is `comm`, else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
        return pid if Path(f"/proc/{pid}/comm").read_text().strip() == comm else None
    except (OSError, ValueError, IndexError):
        return None


def _pids_named(comm: str) -> set[int]:
    pids = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if (p / "comm").read_text().strip() == comm:
                    pids.add(int(p.name))
    return pids


def _start(name: str, cmd: list[str], root: Path, **popen) -> Daemon:
    out = root / f"{name}.out"
    with open(out, "ab") as fh:
        # own session: a Ctrl-C in pytest reaches the fixture's teardown, not the daemons directly
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **popen
        )
    return Daemon(name, proc, out)


def _tail(path: Path, n: int = 15) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def _wait(what: str, ready, daemons: list[Daemon], logs: list[Path], timeout: float) -> None:
    """Poll `ready()` until true; fail early, with the logs, when one of our daemons died."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        dead = [d for d in daemons if not d.alive()]
        if dead or time.monotonic() > deadline:
            why = f"{dead[0].name} exited with {dead[0].proc.returncode}" if dead else f"not after {timeout:.0f} s"
            details = "\n".join(f"--- {p}\n{_tail(p)}" for p in logs + [d.out for d in daemons])
            raise RuntimeError(f"local SLURM: {what} failed ({why}).\n{details}")
        time.sleep(0.3)


def _munge(root: Path, started: list[Daemon], timeout: float) -> None:
    """Our own munged on our own socket and key (a system munged, if any, is left alone)."""
    mdir, private = root / "munge", root / "munge" / "private"
    if _pid_from(mdir / "munged.pid", "munged"):
        return
    # munged insists: socket dir traversable by all, key dir private, both owned by its user
    private.mkdir(parents=True, exist_ok=True)
    key = private / "munge.key"
    if not key.exists():
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
    for p in (mdir, private, key):
        shutil.chown(p, "munge", "munge")
    mdir.chmod(0o755)
    private.chmod(0o700)
    sock = mdir / "munge.socket"
    cmd = [
        _which("munged"),
        "--foreground",
        f"--socket={sock}",
        f"--key-file={key}",
        f"--pid-file={mdir / 'munged.pid'}",
        f"--log-file={private / 'munged.log'}",
        f"--seed-file={private / 'munged.seed'}",
    ]
    d = _start("munged", cmd, root, user="munge", group="munge")
    started.append(d)

    def ready() -> bool:
        enc = subprocess.run([_which("munge"), "-n", "-S", str(sock)], capture_output=True)
        return (
            enc.returncode == 0
            and subprocess.run([_which("unmunge"), "-S", str(sock)], input=enc.stdout, capture_output=True).returncode
            == 0
        )

    _wait("munged start-up", ready, [d], [private / "munged.log"], timeout)


def node_state(cluster: SlurmCluster) -> str:
    r = cluster.run("sinfo", "-h", "-N", "-n", cluster.node, "-o", "%t", check=False)
    # sinfo suffixes states: '*' not responding, '~' powered off, '#' powering up, '$', '@', '+', '-'
    return r.stdout.strip().rstrip("*~#!%$@^+-").lower() if r.returncode == 0 else ""


def _wait_node_usable(cluster: SlurmCluster, daemons: list[Daemon], timeout: float) -> None:
    resumed_at = 0.0

    def ready() -> bool:
        nonlocal resumed_at
        state = node_state(cluster)
        if state in RESUMABLE_STATES and time.monotonic() - resumed_at > 5:
            # left drained / down by an earlier run or an earlier config: return it to service
            cluster.run("scontrol", "update", f"nodename={cluster.node}", "state=resume", check=False)
            resumed_at = time.monotonic()
        return state in USABLE_STATES

    logs = [cluster.root / "slurmctld.log", cluster.root / "slurmd.log"]
    _wait(f"node {cluster.node} becoming idle in sinfo", ready, daemons, logs, timeout)


def _cancel_all_jobs(cluster: SlurmCluster, timeout: float = 30.0) -> None:
    """On a controller we started, every job is the tests'; cancel what is left so nothing keeps running."""
    ids = cluster.run("squeue", "-h", "-o", "%A", check=False).stdout.split()
    if not ids:
        return
    cluster.run("scancel", *ids, check=False)
    deadline = time.monotonic() + timeout
    while cluster.run("squeue", "-h", "-o", "%A", check=False).stdout.split() and time.monotonic() < deadline:
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------------
# the context manager


@contextlib.contextmanager
def local_slurm(root: Path = DEFAULT_ROOT, timeout: float = 90.0) -> Iterator[SlurmCluster]:
    """A usable single-node SLURM for the duration of the block; see the module docstring."""
    if os.geteuid() != 0:
        raise SlurmUnavailable("running SLURM daemons needs root (run the `slurm` tests as root)")
    t0 = time.monotonic()
    ensure_installed()
    root = Path(root)
    started: list[Daemon] = []
    cluster: SlurmCluster | None = None
    linked = False
    try:
        ours_ctld = _pid_from(root / "slurmctld.pid", "slurmctld")
        foreign_ctld = _pids_named("slurmctld") - {ours_ctld}
        if foreign_ctld and not ours_ctld:
            # someone runs a cluster here already: use it as its clients do, start nothing
            cluster = SlurmCluster(root, dict(os.environ), node=socket.gethostname().split(".")[0])
            nodes = cluster.run("sinfo", "-h", "-N", "-o", "%N", check=False)
            if nodes.returncode != 0 or not nodes.stdout.split():
                raise RuntimeError(
                    f"a slurmctld not started by this fixture is running (pid "
                    f"{min(foreign_ctld)}) but `sinfo` cannot reach it: {nodes.stderr.strip()}. "
                    "Stop it (`scontrol shutdown`) or fix its client configuration."
                )
            cluster.node = nodes.stdout.split()[0]
        else:
            for sub in ("state", "spool", "munge"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            node, spec = node_line()
            conf = root / "etc" / "slurm.conf"
            cluster = SlurmCluster(root, {**os.environ, "SLURM_CONF": str(conf)}, node=node, started=started)
            log = root / "slurmctld.log"
            cluster.log_offset = log.stat().st_size if log.exists() else 0
            linked = _link_system_conf(conf)
            _munge(root, started, timeout)
            if not ours_ctld:
                # a running controller keeps the config it read; rewrite only when starting it
                conf.parent.mkdir(exist_ok=True)
                _write_atomic(conf, slurm_conf(root, node, spec))
                _write_atomic(conf.parent / "gres.conf", gres_conf(node))
                # -c: start from a clear state, not from the jobs an earlier (perhaps killed) life saved
                d = _start("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(conf)], root)
                started.append(d)
                _wait(
                    "slurmctld start-up",
                    lambda: cluster.run("scontrol", "ping", check=False).returncode == 0,
                    started,
                    [root / "slurmctld.log"],
                    timeout,
                )
            if not _pid_from(root / "slurmd.pid", "slurmd"):
                if _pids_named("slurmd"):
                    raise RuntimeError(
                        f"a slurmd not started by this fixture runs (pid {min(_pids_named('slurmd'))}) "
                        "and holds its port; stop it first."
                    )
                started.append(_start("slurmd", [_which("slurmd"), "-D", "-f", str(conf)], root))
        _wait_node_usable(cluster, started, timeout)
        cluster.startup_s = time.monotonic() - t0
        yield cluster
    finally:
        try:
            if cluster is not None and any(d.name == "slurmctld" and d.alive() for d in started):
                _cancel_all_jobs(cluster)
        finally:  # whatever happened above, the daemons we started go
            for d in reversed(started):  # slurmd, slurmctld, munged
                d.stop()
            if linked:
                SYSTEM_CONF.unlink(missing_ok=True)
