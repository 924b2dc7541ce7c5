"""Distributed data-parallel training: one network trained by several processes at once
(PyTorch ``DistributedDataParallel``; gloo between CPU processes, NCCL between GPUs).

Two ways in, one training loop (:class:`earmark.training.Trainer`):

- ``Trainer(..., nproc=N)`` (``earmark train --nproc N``): the calling process decodes the
  data as always, then :func:`spawn_fit` starts N training processes on this machine (a free
  port on 127.0.0.1); the waveform bank reaches them through shared memory, so no audio is
  decoded twice. The caller relays rank 0's progress to its hooks and gets rank 0's result
  back; evaluation and saving happen in the caller, as after a single-process run.
- under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR`` set): every
  process runs the whole command; :func:`current` joins torchrun's group and the Trainer
  trains in it. Rank 0 alone writes (checkpoints, the artifact, the report).

Inside the group (:class:`Group`): every process draws the same shuffled order of an epoch
from the epoch's seeded generator and takes its share of each batch (``--batch-size`` is the
global batch, so the schedule and the steps per epoch are those of a single-process run);
its augmentation draws from a stream of its own, seeded by (seed, epoch, rank). The
gradients are averaged by DDP, weighted so that an uneven last batch counts each clip once.
Rank 0 validates and decides; the epoch's record (and so early stopping) is broadcast to
all. Rank 0 writes the checkpoint while the others wait at a barrier; a resumed run loads the
same checkpoint in every process, so it continues exactly (same seeds, same shares).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import queue
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from earmark.errors import EarmarkError, ParameterError

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

__all__ = [
    "Group",
    "PeerGone",
    "check_nproc",
    "current",
    "is_main_process",
    "launched",
    "main_first",
    "spawn_fit",
]

_NEVER = 2**62  # "no stop asked for" in the stop protocol (a step no run reaches)
_TIMEOUT = timedelta(minutes=30)  # a collective waits this long for a process (torch's default)
# imported once by the fork server the training processes start from, not by each of them:
# the loop's own modules, and torch._dynamo, which building an optimizer imports (seconds)
_PRELOAD = [
    "torch._dynamo",
    "earmark.training",
    "earmark.ddp",
    "earmark.evaluation",
    "earmark.augment",
    "earmark.artifact",
    "earmark.features.frontend",
    "earmark.models.neural",
]


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or a launcher like it) into a group
    of more than one process (``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_main_process() -> bool:
    """Rank 0 of a launched group, or a process on its own (reads the environment only)."""
    return _env_int("RANK", 0) == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ParameterError(f"environment variable {name}={value!r} is not a number") from None


@dataclass
class Group:
    """This process's place in a training group: ``rank`` of ``world`` processes, its GPU
    ``local_rank``. ``Group()`` is a process on its own: every method is then the identity,
    so the single-process Trainer runs exactly the code it always ran."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    # the spawn launcher's shared [rank 0's step, step to stop before] (None: no stop protocol)
    stop: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device of this process: ``cuda`` is ``cuda:<local_rank>`` in a group."""
        if self.world > 1 and device.type == "cuda":
            import torch

            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DDP (gradients averaged over the group), or itself alone. A network
        that stages its training (``start_epoch``: parts frozen for some epochs) gets
        ``find_unused_parameters``: its frozen parts take no gradient in those epochs."""
        if self.world == 1:
            return model
        from torch import nn

        staged = callable(getattr(model, "start_epoch", None))
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=staged
        )

    def shard(self, idx: Tensor) -> tuple[Tensor, float]:
        """This process's share of the batch ``idx`` (consecutive slices, sizes differing by
        one at most) and the factor on its mean loss that makes DDP's average of the
        processes' gradients the gradient of the batch's mean loss. A batch with fewer clips
        than processes (a tiny last batch) is padded by repeating its clips, as
        ``DistributedSampler`` pads an epoch: every process must take part in every step."""
        if self.world == 1:
            return idx, 1.0
        import torch

        if len(idx) < self.world:
            idx = idx.repeat(-(-self.world // len(idx)))[: self.world]
        part = torch.tensor_split(idx, self.world)[self.rank]
        return part, len(part) * self.world / len(idx)

    def sum(self, values: list[float]) -> list[float]:
        """``values`` summed element-wise over the group (float64, on the CPU)."""
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        with self._peers():
            dist.all_reduce(t)
        return t.tolist()

    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj`` in every process (a small picklable object: an epoch's record)."""
        if self.world == 1:
            return obj
        import torch
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        with self._peers():
            dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
        return box[0]

    def barrier(self) -> None:
        """Wait until every process of the group is here."""
        if self.world > 1:
            import torch.distributed as dist

            with self._peers():
                dist.barrier()

    @contextlib.contextmanager
    def _peers(self) -> Iterator[None]:
        """A collective whose peers are gone (another process failed and said why, or was
        killed) ends this one with one line, not a traceback from deep in torch."""
        try:
            yield
        except RuntimeError as exc:  # torch.distributed.DistError and its kinds
            first = " ".join(str(exc).split())[:160]
            raise PeerGone(
                f"training process {self.rank}: another process of the group stopped ({first})"
            ) from None

    def stop_before(self, step: int) -> bool:
        """Whether to stop before training ``step`` (0-based, counted over the run): the
        caller of :func:`spawn_fit` asked for it (Ctrl-C, or its ``on_epoch`` hook raised
        :class:`KeyboardInterrupt`). The stop is set to a step no process has begun, so all
        stop before the same step: rank 0 records each step it begins under the lock the
        caller takes to set the stop, and no process is ever more than one step ahead of
        rank 0 (each step's gradient average needs every process)."""
        if self.stop is None:
            return False
        with self.stop.get_lock():
            if step >= self.stop[1]:
                return True
            if self.is_main:
                self.stop[0] = step
        return False


class PeerGone(EarmarkError):
    """A process of the group stopped (its own error says why): this one cannot go on."""


_CURRENT: Group | None = None


def current() -> Group:
    """The group this process trains in: torchrun's (joined on the first call: gloo for CPU
    tensors, NCCL for CUDA ones when there is a GPU), or ``Group()`` when not launched."""
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    if not launched():
        return Group()
    import atexit

    import torch
    import torch.distributed as dist

    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local = _env_int("LOCAL_RANK", rank)
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        try:
            dist.init_process_group(backend, rank=rank, world_size=world, timeout=_TIMEOUT)
        except (RuntimeError, ValueError) as exc:
            first = " ".join(str(exc).split())[:200]
            raise EarmarkError(f"cannot join the torchrun group: {first}") from None
        atexit.register(dist.destroy_process_group)
    _CURRENT = Group(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local)
    return _CURRENT


@contextlib.contextmanager
def main_first(group: Group) -> Iterator[None]:
    """Rank 0 runs the block first, the others after it: what rank 0 decoded into the
    cache (written atomically, so racing writers would be safe, only wasteful) the others
    then read instead of decoding it again."""
    if not group.is_main:
        group.barrier()
    yield
    if group.is_main:
        group.barrier()


def check_nproc(nproc: int, device: str) -> int:
    """``nproc`` checked against ``device`` (a :class:`~earmark.training.TrainConfig`
    device name) before anything is read: at least 1; more than one GPU process needs as
    many GPUs (``auto`` on a machine with fewer GPUs than processes is refused too, rather
    than silently training on the CPU); not inside a torchrun group, whose processes are
    torchrun's. Raises :class:`ParameterError` (one line)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ParameterError(f"nproc must be a whole number >= 1, got {nproc!r}")
    if nproc == 1:
        return nproc
    if launched():
        raise ParameterError(
            "nproc: this process runs under torchrun, which started the processes already; "
            "leave nproc out"
        )
    import torch

    if device.startswith("cuda:"):
        raise ParameterError(
            f"nproc={nproc} trains one process per GPU (cuda:0 to cuda:{nproc - 1}); "
            f"give device cuda, not {device}"
        )
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (device == "cuda" or (device == "auto" and gpus)) and gpus < nproc:
        raise ParameterError(
            f"nproc={nproc} on the GPU needs {nproc} GPUs, this machine has {gpus}; "
            f"use nproc {max(gpus, 1)} or device cpu"
        )
    return nproc


# -- the launcher ---------------------------------------------------------------------------


@dataclass
class _Job:
    """What each spawned process runs: ``run`` (a Trainer's loop, bound to a copy of the
    Trainer without its hooks) on ``inputs`` (tensors in shared memory), on ``device_type``."""

    run: Callable[..., Any]
    inputs: dict[str, Any]
    device_type: str
    relay_steps: bool
    relay_epochs: bool


def spawn_fit(
    run: Callable[..., Any],
    nproc: int,
    inputs: dict[str, Any],
    *,
    device_type: str,
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Call ``run(**inputs, device=..., group=..., on_step=..., on_epoch=...)`` (a Trainer's
    loop, picklable) in ``nproc`` new processes on ``device_type`` (``cpu``: gloo; ``cuda``:
    NCCL, process ``i`` on ``cuda:i``) and return rank 0's result as a dict of its fields.
    Rank 0's progress reaches ``on_step`` / ``on_epoch`` here. Ctrl-C, or ``on_epoch``
    raising :class:`KeyboardInterrupt`, stops every process before the same step (the
    result says ``interrupted``; the last checkpoint is kept); a second Ctrl-C ends them at
    once. A process that fails ends the others; its :class:`EarmarkError` is raised here as
    it was (any other failure: one line naming the process)."""
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    # a fork server (where there is one) that has imported the loop's modules once: each
    # process then starts in a fraction of a second, not after importing torch again
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)
    channel, replies = ctx.Queue(), ctx.Queue()
    stop = ctx.Array("q", [0, _NEVER])
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    threads = max(1, torch.get_num_threads() // nproc)
    job = _Job(run, inputs, device_type, on_step is not None, on_epoch is not None)
    args = (nproc, store.port, threads, os.getpid(), job, channel, replies, stop)
    try:
        procs = mp.start_processes(_child, args=args, nprocs=nproc, join=False, start_method=method)
    except (RuntimeError, OSError, TypeError, AttributeError) as exc:  # pickling, shm
        first = " ".join(str(exc).split())[:200]
        raise EarmarkError(f"cannot start {nproc} training processes: {first}") from None
    result, errors, interrupts = None, [], 0

    def ask_stop(ahead: int) -> None:
        with stop.get_lock():
            if stop[1] == _NEVER:
                stop[1] = stop[0] + ahead

    done = False
    try:
        while not done:
            try:
                try:
                    message = channel.get(timeout=0.2)
                except queue.Empty:
                    done = procs.join(timeout=0)
                    continue
                kind = message[0]
                if kind == "step" and on_step is not None:
                    on_step(*message[1:])
                elif kind == "epoch":
                    try:
                        if on_epoch is not None:
                            on_epoch(message[1])
                    except KeyboardInterrupt:
                        ask_stop(1)  # rank 0 waits for this reply: no process is past its step
                    finally:
                        replies.put(True)
                elif kind == "result":
                    result = message[1]
                elif kind == "error":
                    errors.append(message[1])
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts > 1:
                    raise
                ask_stop(2)
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
        errors += [m[1] for m in _drain(channel) if m[0] == "error"]
        if errors:
            raise _cause(errors) from None
        text = str(exc).strip()
        last = text.splitlines()[-1] if text else type(exc).__name__
        raise EarmarkError(f"training process {exc.error_index} failed: {last}") from None
    finally:
        if not done:
            _end(procs)
    for message in _drain(channel):
        if message[0] == "result":
            result = message[1]
        elif message[0] == "error":
            errors.append(message[1])
    if errors:
        raise _cause(errors)
    if result is None:
        raise EarmarkError("the training processes ended without a result")
    return _decode_result(result)


def _cause(errors: list[BaseException]) -> BaseException:
    """The error that stopped the run: the first that is not a process seeing another stop."""
    return next((e for e in errors if not isinstance(e, PeerGone)), errors[0])


def _drain(channel: Any) -> list[tuple]:
    out = []
    while True:
        try:
            out.append(channel.get(timeout=0.05))
        except queue.Empty:
            return out


def _end(procs: Any) -> None:
    for p in procs.processes:
        if p.is_alive():
            p.terminate()
    for p in procs.processes:
        p.join(5)
        if p.is_alive():
            p.kill()


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG). Its
    parent is the fork server, which exits when the caller does, so a killed ``earmark
    train`` leaves no training processes behind."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _child(
    rank: int,
    world: int,
    port: int,
    threads: int,
    parent: int,
    job: _Job,
    channel: Any,
    replies: Any,
    stop: Any,
) -> None:
    """One training process: joins the group through the caller's store, copies the network
    (the caller's lives in shared memory), runs the loop; rank 0 relays progress and sends
    its result. Ctrl-C is the caller's to handle (:meth:`Group.stop_before`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    try:
        group = Group(rank=rank, world=world, local_rank=rank, stop=stop)
        device = group.device(torch.device(job.device_type))
        store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=_TIMEOUT)
        # NCCL for the gradients on the GPUs, gloo for the small CPU exchanges (records)
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=_TIMEOUT)
        on_step = on_epoch = None
        if rank == 0 and job.relay_steps:

            def on_step(done: int, total: int, loss: float) -> None:
                channel.put(("step", done, total, loss))

        if rank == 0 and job.relay_epochs:

            def on_epoch(record: dict[str, float]) -> None:
                channel.put(("epoch", record))
                _wait_reply(replies, parent)

        inputs = dict(job.inputs)
        inputs["model"] = copy.deepcopy(inputs["model"]).to(device)  # its own, not shared
        inputs["frontend"] = inputs["frontend"].to(device)
        if rank != 0:  # rank 0 validates for all
            inputs["valid"] = inputs["y_valid"] = None
        result = job.run(**inputs, device=device, group=group, on_step=on_step, on_epoch=on_epoch)
        if rank == 0:
            channel.put(("result", _encode_result(result)))
    except EarmarkError as exc:
        channel.put(("error", exc))
        raise SystemExit(1) from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _wait_reply(replies: Any, parent: int) -> None:
    """Wait for the caller to have run its ``on_epoch`` hook; end if the caller is gone."""
    while True:
        try:
            replies.get(timeout=1.0)
            return
        except queue.Empty:
            try:
                os.kill(parent, 0)  # (the fork server is this process's parent, not the caller)
            except ProcessLookupError:
                os._exit(1)


def _encode_result(result: Any) -> dict[str, Any]:
    """A dataclass result (a TrainResult) as plain data for the queue: its weights
    (``best_state``) as safetensors bytes, not pickled tensors, whose shared memory would
    have to outlive this process."""
    from safetensors.torch import save

    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    weights = fields.pop("best_state")
    return fields | {"weights": save({k: v.contiguous() for k, v in weights.items()})}


def _decode_result(data: dict[str, Any]) -> dict[str, Any]:
    from safetensors.torch import load

    data = dict(data)
    data["best_state"] = load(data.pop("weights"))
    return data
