"""The training engine: ``train(config, out_dir, resume=False)`` runs one training job.

Output folder::

    .lock              held (flock) by the one process writing the folder; holds its PID and host
    config.yaml        the validated config (defaults filled in)
    metrics.jsonl      one record per log interval (train) and per evaluation (valid)
    tid.jsonl          online TID records (train.tid_every > 0, models with batch-statistics norms)
    tensorboard/       TensorBoard events of the same records (train.tensorboard: true; tensorboard_log.py)
    checkpoints/       last.pt (full state for --resume) and step_XXXXXXXX.pt (weights, for averaging)
    final.json         status (completed | diverged), test metrics, steps, wall time, memory, ...

Crash safety (docs/models_training.md, "Resume, the run lock and errors"): every file is written
atomically except the two JSONL logs, which are appended and, on resume, cut back to the
checkpoint's step (a torn last line dropped with a warning).  A checkpoint writes ``step_N.pt``
before ``last.pt``, and a restore removes the step checkpoints newer than ``last.pt`` (and rebuilds
its own if it is missing), so the averaged checkpoints are always those of an uninterrupted run.
Nothing is appended after the final checkpoint; ``final.json`` is written last.

The hot loop keeps the loss on the device; the host reads it only at log intervals, where it also
checks that the loss is finite (a non-finite loss ends the run with status ``diverged``).
Multi-process runs start with ``torchrun``; rank 0 writes every file.

One *step* is one optimiser update.  With ``train.update_freq`` N it accumulates the gradients of N
batches (fairseq's ``--update-freq``), and with P processes each takes its own N batches, so an
update sees N·P batches.  The gradient is fairseq's: the sum over those batches of the target-summed
loss plus the RBN penalties, divided by their total number of targets (:func:`accumulate_gradients`);
for a norm without batch statistics that is one step on the union of the batches.  The learning rate,
``max_steps``, logging, evaluation and checkpoints count updates, so a checkpoint always falls on an
update boundary and resuming stays exact.  What differs by task family
is asked of the family's class (``normlab.train.families``).  A finished run is read back, for the
TID probe and other post-hoc tools, with ``normlab.train.load_run`` (``runs.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import normlab
from normlab.atomic import temporary_files
from normlab.models import ModelOptions
from normlab.norms import batch_stat_norms, batch_stats_inference, regularization_loss

from . import checkpoint as ckpt
from . import config as config_mod
from . import fit
from .batching import EpochStream, split_batches
from .errors import OutputExistsError, RunStateError
from .examples import TaskData
from .families import get_family
from .lock import LOCK_NAME, RunLock, lock_holder, locked_error
from .objectives import evaluate, evaluates_with_batch_stats
from .runtime import autocast_for, device_kind, keep_freed_memory, pick_device
from .schedules import learning_rate
from .tasks import load_task
from .tensorboard_log import FOLDER as TENSORBOARD_FOLDER
from .tensorboard_log import TensorBoardLog

__all__ = ["OutputExistsError", "build_run_model", "train", "train_batches"]


class Distributed:
    """Rank and world size from torchrun's environment; initialises the process group if needed."""

    def __init__(self, device_kind: str):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
            self.owns_group = True
        if dist.is_initialized():
            self.world_size, self.rank = dist.get_world_size(), dist.get_rank()

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.active:
            dist.barrier()

    def all_sum(self, value: float, device: torch.device) -> torch.Tensor | float:
        """The sum of ``value`` over the processes, as a tensor on ``device`` (no host sync); ``value``
        itself in a single process."""
        if not self.active:
            return value
        t = torch.tensor(float(value), device=device)
        dist.all_reduce(t)
        return t

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is True on any rank."""
        if not self.active:
            return flag
        t = torch.tensor([float(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, obj):
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self):
        if self.owns_group:
            self.barrier()  # teardown while a peer is mid-collective can abort gloo (see test_distributed)
            dist.destroy_process_group()


def check_output_dir(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} exists and is not a folder")
    if out.is_dir() and not resume and any(p.name != LOCK_NAME for p in out.iterdir()):
        holder = lock_holder(out)
        if holder is not None:  # the more useful message: someone is writing it right now
            raise locked_error(out, holder)
        raise OutputExistsError(
            f"output folder {out} already has files; "
            "pass --resume to continue that run, or choose a new --out"
        )


RUN_FILES = ("config.yaml", "metrics.jsonl", "tid.jsonl", "final.json")
LOGS = ("metrics.jsonl", "tid.jsonl")  # the files a run appends to (all others are written atomically)


def clear_run_folder(out: Path, why: str) -> None:
    """Remove what the engine writes into a run folder (and nothing else)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    shutil.rmtree(out / TENSORBOARD_FOLDER, ignore_errors=True)
    print(f"normlab train: {out} held {why}; cleared it and starting afresh", file=sys.stderr)


def _afresh(out: Path) -> str:
    return f"delete {out} to start the run afresh, or rerun with --restart-if-changed (which clears it)"


def remove_temporary_files(out: Path) -> None:
    """The halves of atomic writes a killed run left behind (we hold the lock: nobody is writing)."""
    for folder in (out, out / "checkpoints"):
        for tmp in temporary_files(folder):
            tmp.unlink(missing_ok=True)


def resume_state(cfg: dict, out: Path, restart_if_changed: bool, main: bool = True) -> tuple[dict | None, dict | None]:
    """What ``--resume`` finds in ``out``: (final.json of a finished run, None), (None, the last.pt
    state to continue from), or (None, None) to start afresh.  The config is compared first, so a
    finished run of another config is not returned.  A folder of another config, or whose files are
    damaged (a checkpoint that does not load, a log line that is not JSON), is refused (ConfigError,
    RunStateError) or, with ``restart_if_changed``, cleared.  ``main``: this process writes the
    folder (rank 0), and repairs it to the checkpoint's step (:func:`repair_to_checkpoint`)."""
    if (out / "config.yaml").exists():
        try:
            previous = yaml.safe_load((out / "config.yaml").read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            previous = None
        if config_mod.config_hash(previous) != config_mod.config_hash(cfg):
            if not restart_if_changed:
                raise config_mod.ConfigError(
                    f"--resume: the config differs from the one {out} was started with ({out / 'config.yaml'}); "
                    "resume with the same config, start a new --out, or pass --restart-if-changed"
                )
            clear_run_folder(out, "a run of another config")
    try:
        if (out / "final.json").exists():
            try:
                return json.loads((out / "final.json").read_text()), None
            except ValueError:
                raise RunStateError(
                    f"{out / 'final.json'} is not valid JSON: the file is damaged; {_afresh(out)}"
                ) from None
        last = out / "checkpoints" / "last.pt"
        if not last.exists():
            return None, None
        state = ckpt.load(last, "cpu", fix=_afresh(out))
        if main:
            repair_to_checkpoint(out, state)
        return None, state
    except RunStateError as err:
        if not restart_if_changed:
            raise
        clear_run_folder(out, f"a run that cannot resume ({str(err).split('; ')[0]})")
        return None, None


def save_step_checkpoint(folder: Path, step: int, model_state: dict) -> None:
    ckpt.save(folder / ckpt.STEP_CHECKPOINT.format(step), {"model": model_state, "step": step})


def repair_to_checkpoint(out: Path, state: dict) -> None:
    """Make ``out`` what an uninterrupted run had at the checkpoint's step: the logs cut back to it (a
    torn last line dropped), no step checkpoint from beyond it, and its own (a folder written before
    step_N.pt came first may lack it)."""
    step, folder = state["step"], out / "checkpoints"
    for name in LOGS:
        ckpt.truncate_jsonl(out / name, step, _afresh(out))
    for path in ckpt.step_checkpoints(folder):
        if ckpt.step_of(path) > step:
            path.unlink()
    if not (folder / ckpt.STEP_CHECKPOINT.format(step)).exists():
        save_step_checkpoint(folder, step, state["model"])


def versions() -> dict:
    """Versions recorded in final.json; a metric package this task never imports may be absent (null)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "normlab": normlab.__version__,
        "sacrebleu": installed("sacrebleu"),
        "seqeval": installed("seqeval"),
    }


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build_run_model(cfg: dict, task: TaskData) -> torch.nn.Module:
    """The (untrained, CPU) model a validated run config builds for ``task``: what a run trains."""
    return get_family(task.family).build_model(ModelOptions(**cfg["model"]), task)


def train_batches(cfg: dict, task: TaskData) -> list[np.ndarray]:
    """The fixed index batches of the training split that a run with config ``cfg`` draws from."""
    t = cfg["train"]
    return split_batches(task, "train", t["max_tokens"], t["batch_size"], cfg["seed"], t["max_sentences"])


def accumulate_gradients(
    wrapped: torch.nn.Module,
    model: torch.nn.Module,
    family,
    batches: list,
    label_smoothing: float,
    autocast,
    world: Distributed,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Back-propagate one update's ``batches`` (this process's share) into the gradients.

    As fairseq with ``--update-freq``: the gradient is that of Σ_b (n_b·loss_b + Σ penalties_b) / N,
    where loss_b is the family's loss of batch b, a mean over its ``n_targets`` n_b, the penalties are
    the RBN terms of b's forward (``regularization_loss(model, n_b)`` is their sum over n_b), and N is
    the number of targets of every batch of the update on every process.  DDP averages the
    processes' gradients, so each process scales by the world size as well; it all-reduces its
    gradients only after the last batch (``no_sync`` before).  One batch on one process is the plain
    loss, unscaled.  Returns this process's update objective and task loss (without RBN's penalty),
    each its batches' target-weighted mean, detached.
    """
    counts = [batch.n_targets for batch in batches]
    local = sum(counts)
    total = world.all_sum(local, device)  # a tensor when distributed: the scale stays on the device
    scaled = len(batches) > 1 or world.active
    update_loss = update_task_loss = 0.0
    for i, (batch, n) in enumerate(zip(batches, counts, strict=True)):
        last = i == len(batches) - 1
        with contextlib.nullcontext() if last or not world.active else wrapped.no_sync():
            batch = batch.to(device)
            with autocast():
                loss = family.loss(wrapped, batch, label_smoothing)
            objective = loss + regularization_loss(model, n)
            (objective * (n * world.world_size / total) if scaled else objective).backward()
        weight = n / local if scaled else 1.0
        update_loss = update_loss + objective.detach() * weight
        update_task_loss = update_task_loss + loss.detach() * weight
    return update_loss, update_task_loss


def train(
    config: dict | str | Path,
    out_dir: str | Path,
    resume: bool = False,
    task: TaskData | None = None,
    stop_at_step: int | None = None,
    restart_if_changed: bool = False,
) -> dict:
    """Run one training job; returns the ``final.json`` record.

    ``config``: a run-config dict or a YAML path (validated before anything runs).  ``task``: a
    ready ``TaskData`` instead of ``config['data']`` (in-memory data, e.g. in tests).  An output folder
    with files is an error unless ``resume``; resuming a finished run returns its ``final.json``.
    ``stop_at_step``: return after that step without a checkpoint or ``final.json``, exactly as if the
    process had been killed there (returns ``{"status": "interrupted", ...}``); for pre-emption tests.
    ``restart_if_changed`` (with ``resume``): a folder started with a different config (finished or
    not), or whose ``last.pt`` does not load, is cleared and the run starts afresh instead of being
    refused (what a workflow wants when a cell's config changed).  The folder is locked for the whole
    run (``OUT/.lock``): a second writer gets RunLockedError.
    """
    cfg = config_mod.load(config) if isinstance(config, str | Path) else config_mod.validate(config)
    out = Path(out_dir)
    check_output_dir(out, resume)
    main = int(os.environ.get("RANK", "0")) == 0  # rank 0 writes every file (and holds the lock)
    with RunLock(out) if main else contextlib.nullcontext():  # creates out: an unwritable one fails here
        if main:
            remove_temporary_files(out)
        final, state = resume_state(cfg, out, restart_if_changed, main) if resume else (None, None)
        if final is not None:
            return final
        world = Distributed(device_kind(cfg["train"]["device"]))
        try:
            return _Run(cfg, out, state, task, world).run(stop_at_step)
        finally:
            world.close()


class _Run:
    def __init__(self, cfg: dict, out: Path, state: dict | None, task: TaskData | None, world: Distributed):
        self.cfg, self.out, self.world = cfg, out, world
        self.tcfg, self.ocfg, self.ecfg = cfg["train"], cfg["optim"], cfg["eval"]
        self.seed = cfg["seed"]
        if self.tcfg["threads"]:
            torch.set_num_threads(self.tcfg["threads"])
        self.device = pick_device(self.tcfg["device"], world.local_rank)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.autocast = autocast_for(self.device, self.tcfg["precision"])
        if self.device.type == "cpu":
            # what torch.use_deterministic_algorithms(True, warn_only=True) does, minus its import of
            # torch._inductor (1.7 s per job; normlab never compiles)
            torch._C._set_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        self.task = task if task is not None else load_task(cfg["task"], cfg["data"], self.seed)
        if self.task.family != cfg["task"]:
            raise config_mod.ConfigError(
                f"task: the config says {cfg['task']!r} but the data is {self.task.family!r}"
            )
        fit.check_task(cfg, self.task)  # patch size and token budget, before anything is built
        self.family = get_family(self.task.family)
        self.task = self.family.for_run(self.task, cfg)  # what the run config adds to the data
        self.model = build_run_model(cfg, self.task).to(self.device)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.wrapped = self.model
        if world.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.model, device_ids=ids)
        decay = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            decay,
            lr=self.ocfg["lr"],
            betas=tuple(self.ocfg["betas"]),
            eps=self.ocfg["eps"],
            weight_decay=self.ocfg["weight_decay"],
        )
        self.train_batches = train_batches(cfg, self.task)
        eval_tokens = self.ecfg["max_tokens"] or self.tcfg["max_tokens"]
        self.eval_batches = {
            s: split_batches(self.task, s, eval_tokens, self.tcfg["batch_size"], self.seed)
            for s in ("valid", "test")
        }
        # each rank draws its own dropout masks; the seed fixes them all
        torch.manual_seed(self.seed * 1_000_003 + world.rank)
        self.stream = EpochStream(self.task, self.train_batches, self.seed, world.rank, world.world_size)
        self.step, self.elapsed, self.tokens_seen = 0, 0.0, 0
        self.ckpt_dir = out / "checkpoints"
        stat_norms = batch_stat_norms(self.model).values()
        self.has_batch_stats = bool(stat_norms)
        # the batch statistics in effect: pooled over the processes (a norm's `sync: true` under DDP)
        # or per device (the default, as the authors' MaskBatchNorm3d); null without such norms
        self.bn_sync = any(m.sync for m in stat_norms) and world.active if stat_norms else None
        world.barrier()  # every rank has checked the folder before rank 0 writes into it
        if world.main:
            out.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write(
                out / "config.yaml", lambda f: f.write(yaml.safe_dump(self.cfg, sort_keys=True).encode())
            )
        if state is not None:
            self._restore(state)
            if world.main:
                print(f"normlab train: resuming {out} from step {self.step}", file=sys.stderr, flush=True)
        elif world.main:  # afresh: nothing of an earlier start may be appended to or averaged
            for name in LOGS:
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(self.ckpt_dir, ignore_errors=True)
            shutil.rmtree(out / TENSORBOARD_FOLDER, ignore_errors=True)
        self.tensorboard = None  # rank 0's TensorBoardLog, fed what _log writes (train.tensorboard)
        if world.main and self.tcfg["tensorboard"]:
            self.tensorboard = TensorBoardLog(out, self.model, resume_step=self.step if state is not None else None)
        world.barrier()

    # --- checkpoints ------------------------------------------------------------------------------

    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "stream": self.stream.state_dict(),
            "elapsed": self.elapsed,
            "tokens_seen": self.tokens_seen,
            "rng": self.world.gather(ckpt.rng_state()),
            "config_hash": config_mod.config_hash(self.cfg),
        }

    def _save(self) -> None:
        """step_N.pt first, then last.pt: a kill between the two leaves last.pt at the previous
        checkpoint, and resuming from it removes the newer step_N.pt (repair_to_checkpoint)."""
        state = self._state()  # every rank takes part in gathering the RNG states
        if self.tensorboard is not None:
            self.tensorboard.flush()  # every event up to this step is on disk before last.pt says so
        if self.world.main:
            save_step_checkpoint(self.ckpt_dir, self.step, state["model"])
            ckpt.save(self.ckpt_dir / "last.pt", state)
            ckpt.prune_step_checkpoints(self.ckpt_dir, self.tcfg["average_last"])
        self.world.barrier()

    def _restore(self, state: dict) -> None:
        if len(state["rng"]) != self.world.world_size:  # each process's data share and RNG are its rank's
            raise RunStateError(
                f"{self.out / 'checkpoints' / 'last.pt'} was written by a run of {len(state['rng'])} process(es), "
                f"this one has {self.world.world_size}: resume it with {len(state['rng'])} (the workflow's "
                f"`gpus`), or delete {self.out} to start it afresh"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed, self.tokens_seen = state["step"], state["elapsed"], state["tokens_seen"]
        self.stream.load_state_dict(state["stream"])
        ckpt.set_rng_state(state["rng"][self.world.rank])  # the folder was repaired to this step (resume_state)

    # --- the loop ---------------------------------------------------------------------------------

    def _log(self, name: str, records: list[dict]) -> None:
        if self.world.main:
            ckpt.append_jsonl(self.out / name, records)
        if self.tensorboard is not None:
            self.tensorboard.log(name, records)

    def _progress(self):
        mode = self.tcfg["progress"]
        show = self.world.main and (mode == "on" or (mode == "auto" and sys.stderr.isatty()))
        bar = tqdm(
            total=self.tcfg["max_steps"], initial=self.step, disable=not show, dynamic_ncols=True, unit="step"
        )
        line_logs = self.world.main and mode == "auto" and not show
        return bar, line_logs

    def _tid_recorder(self):
        if not (self.tcfg["tid_every"] and self.has_batch_stats):
            return None
        from normlab.tid import OnlineTIDRecorder

        return OnlineTIDRecorder(self.model)

    def run(self, stop_at_step: int | None = None) -> dict:
        max_steps, log_every = self.tcfg["max_steps"], self.tcfg["log_every"]
        update_freq = self.tcfg["update_freq"]
        smoothing = self.ocfg["label_smoothing"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        recorder = self._tid_recorder()
        bar, line_logs = self._progress()
        loss_sum = torch.zeros((), device=self.device)
        task_loss_sum = torch.zeros((), device=self.device)  # without RBN's penalty
        window_steps, window_tokens, window_start = 0, 0, time.perf_counter()
        status, diverged_at = "completed", None
        self.wrapped.train()
        while self.step < max_steps:
            batches = [next(self.stream) for _ in range(update_freq)]
            self.step += 1
            lr = learning_rate(self.step, self.ocfg, max_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            total, loss = accumulate_gradients(
                self.wrapped, self.model, self.family, batches, smoothing, self.autocast, self.world, self.device
            )
            if self.ocfg["clip_norm"] > 0:
                torch.nn.utils.clip_grad_norm_(params, self.ocfg["clip_norm"])
            self.optimizer.step()
            loss_sum += total
            task_loss_sum += loss
            window_steps += 1
            window_tokens += sum(batch.n_tokens for batch in batches)
            if recorder is not None and self.step % self.tcfg["tid_every"] == 0:
                recorder.record(self.step)
            bar.update(1)
            if self.step % log_every and self.step != max_steps:
                continue
            # --- log interval: the one place the host reads device values ---
            mean_loss, mean_task_loss = (torch.stack([loss_sum, task_loss_sum]) / window_steps).tolist()
            now = time.perf_counter()
            self.elapsed += now - window_start
            tokens_per_s = window_tokens * self.world.world_size / max(now - window_start, 1e-9)
            self.tokens_seen += window_tokens * self.world.world_size
            record = {
                "step": self.step,
                "kind": "train",
                "loss": mean_loss,
                "task_loss": mean_task_loss,
                "lr": lr,
                "tokens_per_s": tokens_per_s,
                "elapsed_s": self.elapsed,
                "epoch": self.stream.epoch,
            }
            self._log("metrics.jsonl", [record])
            if recorder is not None:
                self._log("tid.jsonl", recorder.flush())
            bar.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}")
            if line_logs:
                print(
                    f"step {self.step}/{max_steps} loss {mean_loss:.4f} lr {lr:.3e} "
                    f"tokens/s {tokens_per_s:.0f}",
                    file=sys.stderr,
                    flush=True,
                )
            if self.world.any(not np.isfinite(mean_loss)):
                status, diverged_at = "diverged", self.step
                break
            loss_sum.zero_()
            task_loss_sum.zero_()
            window_steps, window_tokens = 0, 0
            if self.tcfg["eval_every"] and self.step % self.tcfg["eval_every"] == 0:
                valid = self._evaluate("valid", decode=self.ecfg["decode_valid"])
                self._log("metrics.jsonl", [{"step": self.step, "kind": "valid", **valid}])
            if self.tcfg["checkpoint_every"] and self.step % self.tcfg["checkpoint_every"] == 0:
                self._save()
            window_start = time.perf_counter()
            if stop_at_step is not None and self.step >= stop_at_step:
                bar.close()
                if self.tensorboard is not None:
                    self.tensorboard.close()
                return {"status": "interrupted", "steps": self.step}
        bar.close()
        return self._finish(status, diverged_at)

    # --- evaluation and the end -------------------------------------------------------------------

    def _evaluate(self, split: str, decode: bool = False) -> dict:
        return evaluate(
            self.model,
            self.task,
            split,
            self.eval_batches[split],
            self.device,
            self.ecfg,
            decode=decode,
            autocast=self.autocast(),
        )

    def _evaluate_twice(self, split: str, decode: bool) -> dict:
        """Population statistics (normal inference) and, for batch-statistics models, batch statistics."""
        results = {"population": self._evaluate(split, decode)}
        if evaluates_with_batch_stats(self.ecfg["batch_stats"], self.has_batch_stats):
            with batch_stats_inference(self.model):
                results["batch_stats"] = self._evaluate(split, decode)
        return results

    def _finish(self, status: str, diverged_at: int | None) -> dict:
        final = {
            "status": status,
            "task": self.task.family,
            "seed": self.seed,
            "steps": self.step,
            "epochs": self.stream.epoch,
            "wall_time_s": self.elapsed,
            "tokens_seen": self.tokens_seen,
            "config_hash": config_mod.config_hash(self.cfg),
            "versions": versions(),
            "n_params": self.n_params,
            "world_size": self.world.world_size,
            "update_freq": self.tcfg["update_freq"],
            "bn_sync": self.bn_sync,
            "device": str(self.device),
            "norm": self.cfg["model"]["norm"],
            "placement": self.cfg["model"]["placement"],
            "norm_scope": self.cfg["model"]["norm_scope"],
            "norm_sites": self.cfg["model"]["norm_sites"],
            "primary_metric": self.family.primary_metric(self.task),
        }
        if status == "diverged":
            final.update(diverged_at_step=diverged_at, test=None, valid=None)
        else:
            self._save()
            paths = ckpt.step_checkpoints(self.ckpt_dir, self.step)[-self.tcfg["average_last"] :]
            if len(paths) > 1:
                self.model.load_state_dict(ckpt.average_state_dicts(paths, _afresh(self.out)))
            final["averaged_checkpoints"] = [p.name for p in paths]
            decodes = self.family.decodes
            final["valid"] = self._evaluate_twice("valid", decode=decodes and self.ecfg["decode_valid"])
            final["test"] = self._evaluate_twice("test", decode=decodes)
        final["peak_memory_mb"] = peak_memory_mb(self.device)
        if self.tensorboard is not None:
            self.tensorboard.final(self.step, final)
            self.tensorboard.close()
        if self.world.main:
            ckpt.write_json(self.out / "final.json", final)
        self.world.barrier()
        return ckpt.json_safe(final)
