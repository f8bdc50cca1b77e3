"""The one place that reads the environment: Colab or not, smoke mode, the device and its
mixed-precision dtype, the data and runs folders, which torchrun process. Variables:
``HANDPOSE_SMOKE=1`` (tiny data and one epoch: every notebook runs in seconds, for the tests),
``HANDPOSE_DATA``, ``HANDPOSE_RUNS``, ``HANDPOSE_DEVICE``, and torchrun's ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``.
"""

from __future__ import annotations

import os
import random
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

SMOKE_VAR, DATA_VAR, DEVICE_VAR, RUNS_VAR, ARCHIVES_VAR, DRIVE_RUNS_VAR = (
    "HANDPOSE_SMOKE", "HANDPOSE_DATA", "HANDPOSE_DEVICE", "HANDPOSE_RUNS", "HANDPOSE_ARCHIVES",
    "HANDPOSE_DRIVE_RUNS")
DRIVE = Path("/content/drive")  # where Colab mounts Google Drive

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def in_notebook() -> bool:
    """True in a Jupyter (or Colab) kernel, where figures and highlighted code can be displayed."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return getattr(shell, "kernel", None) is not None


def is_smoke() -> bool:
    """True when ``HANDPOSE_SMOKE`` is on. A typo such as ``2`` or ``y`` raises instead of quietly
    starting a full-size run."""
    raw = os.environ.get(SMOKE_VAR, "")
    value = raw.strip().lower()
    if value in _TRUE + _FALSE:
        return value in _TRUE
    raise ValueError(
        f"{SMOKE_VAR}={raw!r} is not understood. Use one of {', '.join(_TRUE)} for smoke mode, "
        f"or one of {', '.join(v for v in _FALSE if v)} (or an empty value, or unset it) for the "
        "full-size run; case does not matter.")


def smoke_or(default, smoke):
    """``smoke`` in smoke mode, else ``default``; keeps parameter cells one line per value."""
    return smoke if is_smoke() else default


def _checked_device(raw: str, setting: str) -> torch.device:
    """The device ``raw`` names, once it is known and present here (torch would accept ``cuda``
    and fail later, on the first tensor moved there, without naming ``setting``)."""
    name = raw.strip().lower()
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise ValueError(f"{setting} is not a device name. Use one of cpu, cuda, cuda:N, mps "
                         "(N = GPU index), or leave it unset to pick the best one available.")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"{setting}, but no CUDA GPU is available here (torch "
                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). In Colab, "
                "choose a GPU runtime (Runtime > Change runtime type); otherwise set it to cpu "
                "or leave it unset.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RuntimeError(
                f"{setting}, but this machine has {count} CUDA GPU(s): "
                f"{', '.join(f'cuda:{i}' for i in range(count))}. Pick one of those.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"{setting}, but Apple's MPS backend is not available here. Set it to "
                           "cpu (or cuda) or leave it unset.")
    return device


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to train on: ``prefer`` or ``HANDPOSE_DEVICE`` if given (it must exist here,
    else this raises, naming the setting), else CUDA, MPS, CPU."""
    if prefer:
        return _checked_device(str(prefer), f"pick_device(prefer={str(prefer)!r})")
    if (raw := os.environ.get(DEVICE_VAR, "")).strip():
        return _checked_device(raw, f"{DEVICE_VAR}={raw!r}")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class AmpSettings:
    """Mixed precision on a device: ``dtype`` None is off; float16's small exponent range needs
    loss scaling (``use_scaler``), bfloat16 has float32's range and needs none."""

    dtype: torch.dtype | None
    use_scaler: bool

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def describe(self) -> str:
        if self.dtype is None:
            return "off (fp32)"
        scaler = " with GradScaler" if self.use_scaler else ""
        return str(self.dtype).replace("torch.", "") + scaler


def amp_settings(device: torch.device | str | None = None) -> AmpSettings:
    """bf16 on CUDA compute capability >= 8.0 (A100, L4, H100); fp16 + GradScaler on older GPUs
    such as Colab's T4; off on CPU and MPS. (``torch.cuda.is_bf16_supported()`` says True on a T4,
    where bf16 is emulated, and slow.)"""
    device = torch.device(device) if device is not None else pick_device()
    if device.type != "cuda":
        return AmpSettings(None, False)
    index = device.index if device.index is not None else torch.cuda.current_device()
    if torch.cuda.get_device_capability(index) >= (8, 0):
        return AmpSettings(torch.bfloat16, False)
    return AmpSettings(torch.float16, True)


def seed_everything(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices). ``deterministic`` also asks cuDNN and torch for
    deterministic kernels, which is slower."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def default_num_workers() -> int:
    """DataLoader workers: 0 in smoke mode (and tests), else at most 2, Colab's core count."""
    return 0 if is_smoke() else min(2, os.cpu_count() or 1)


def configure_threads() -> None:
    """In smoke mode, one torch thread: the tests run two notebooks at a time on 2 cores, and
    two kernels with two threads each only fight over them."""
    if is_smoke():
        torch.set_num_threads(1)


def progress_bar(iterable=None, enabled: bool = True, **kwargs):
    """A tqdm bar (Jupyter's widget in a notebook); ``enabled=False`` switches it off. Only
    ``disable=True`` is ever passed: ``disable=False`` would override tqdm's own environment
    defaults (``TQDM_DISABLE``, ``TQDM_MININTERVAL``), which CI and the tests use."""
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs, **({} if enabled else {"disable": True}))

def data_dir() -> Path:
    """Where datasets live: ``HANDPOSE_DATA``, else ``/content/data`` in Colab, else the
    checkout's ``data/`` (when the package runs from one), else ``./data``. Smoke runs use a
    ``smoke/`` sub-folder so they never overwrite a default-mode dataset."""
    checkout = Path(__file__).resolve().parent.parent
    if os.environ.get(DATA_VAR):
        base = _folder_var(DATA_VAR)
    elif in_colab():
        base = Path("/content/data")
    elif (checkout / "pyproject.toml").exists() and (checkout / "notebooks").is_dir():
        base = checkout / "data"
    else:
        base = Path.cwd() / "data"
    return base / "smoke" if is_smoke() else base


def runs_dir() -> Path:
    """Where checkpoints and training logs go: ``HANDPOSE_RUNS``, else next to ``data/``."""
    if os.environ.get(RUNS_VAR):
        return _folder_var(RUNS_VAR)
    return data_dir().parent / "runs" if not is_smoke() else data_dir() / "runs"


def archives_dir() -> Path | None:
    """Where downloaded archives are kept for good: ``HANDPOSE_ARCHIVES`` (:func:`use_drive` sets
    it). ``None``: each archive is downloaded beside its dataset and deleted once extracted."""
    return _folder_var(ARCHIVES_VAR) if os.environ.get(ARCHIVES_VAR) else None


def drive_copy(folder) -> Path | None:
    """Where ``fit`` keeps copies of the checkpoints in ``folder`` (:func:`use_drive`): the same
    place under ``HANDPOSE_DRIVE_RUNS`` as ``folder`` has under :func:`runs_dir`, else None."""
    if folder is None or not os.environ.get(DRIVE_RUNS_VAR):
        return None
    drive, runs = _folder_var(DRIVE_RUNS_VAR), runs_dir()  # a file in the way raises, named
    try:
        return drive / Path(folder).resolve().relative_to(runs.resolve())
    except ValueError:  # a folder outside the runs folder: no copies
        return None


def use_drive(enabled: bool, folder: str = "MyDrive/handpose-course") -> Path | None:
    """In Colab, with ``enabled``: mount Google Drive and keep in ``folder`` on it a copy of every
    run's checkpoints (``fit`` resumes from it on a new runtime; a Drive hiccup only warns), the
    downloaded archives and the ImageNet weights, so that a new runtime resumes training and
    extracts the data again without downloading it. Training reads and writes the runtime's own
    disk: Drive is slow with many small files. Archives count against Drive's quota (15 GB
    free): COCO's train2017 (18 GB) does not fit there. Outside Colab it says so."""
    if not enabled:
        return None
    if not in_colab():
        print(f"USE_DRIVE: Google Drive is mounted in Colab only; runs stay in {runs_dir()}")
        return None
    from google.colab import drive

    drive.mount(str(DRIVE))
    base = DRIVE / folder
    for name, sub in ((DRIVE_RUNS_VAR, "runs"), (ARCHIVES_VAR, "downloads"), ("TORCH_HOME", "torch")):
        (base / sub).mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(base / sub)
    print(f"Google Drive: run checkpoints, downloaded archives and ImageNet weights are kept in {base}")
    return base


def _folder_var(name: str) -> Path:
    """The folder a variable names, refused by name where a file stands in the way."""
    path = Path(os.environ[name]).expanduser()
    there = next(p for p in (path, *path.parents) if p.exists())  # "/" always exists
    if not there.is_dir():
        raise ValueError(f"{name}={os.environ[name]!r}: {there} is a file, not a folder. Point "
                         f"{name} at a folder (created if missing), or unset it for the default.")
    return path


def describe() -> str:
    """One line for the top of a notebook: where we are and what we run on."""
    dev = pick_device()
    gpu = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    return (f"torch {torch.__version__} | device {dev}{gpu} | AMP {amp_settings(dev).describe()} "
            f"| colab={in_colab()} | smoke={is_smoke()} | data={data_dir()}")


# Several processes: torch.distributed under torchrun ----------------------------------------------

@dataclass(frozen=True)
class Distributed:
    """This process's ``rank`` of ``world_size``, its ``local_rank`` on this machine (its GPU),
    ``backend`` and ``enabled`` (a process group runs). One process: ``Distributed()``."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, evaluates and writes checkpoints."""
        return self.rank == 0


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else None
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer. It is set by torchrun for each "
                         "process; unset it, or launch with torchrun.") from None


def distributed() -> Distributed:
    """The running process group's state, or ``Distributed()`` (rank 0 of 1) when none runs."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    return Distributed(rank=dist.get_rank(), local_rank=_env_int("LOCAL_RANK") or 0,
                       world_size=dist.get_world_size(), backend=str(dist.get_backend()),
                       enabled=True)


def init_distributed(device: torch.device | str | None = None,
                     timeout_s: float = 1800) -> tuple[Distributed, torch.device]:
    """Start the process group when ``torchrun`` launched this process; returns the state and
    this process's device. NCCL on CUDA (this process on GPU ``LOCAL_RANK``), gloo on the CPU.
    Without torchrun's variables nothing starts. ``timeout_s`` bounds the wait at a collective
    (while rank 0 evaluates alone)."""
    device = torch.device(device) if device is not None else pick_device()
    world = _env_int("WORLD_SIZE")
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK")
    if world is None or world <= 1:
        if rank not in (None, 0):
            raise ValueError(f"RANK={rank} but WORLD_SIZE is {world}: these variables come from "
                             "torchrun; unset them, or launch with torchrun --nproc_per_node N.")
        return Distributed(), device
    if rank is None:
        raise ValueError(f"WORLD_SIZE={world} but RANK is not set: launch with torchrun "
                         "(it sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT).")
    if not (0 <= rank < world):
        raise ValueError(f"RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world}).")
    local = rank if local is None else local
    if dist.is_initialized():
        return distributed(), _process_device(device, local)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ValueError(f"{name} is not set, so the {world} processes cannot find each "
                             "other: launch with torchrun (e.g. torchrun --standalone "
                             "--nproc_per_node 2 -m handpose_utils.train hands).")
    device = _process_device(device, local)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s), **kwargs)
    return Distributed(rank=rank, local_rank=local, world_size=world, backend=backend,
                       enabled=True), device


def _process_device(device: torch.device, local_rank: int) -> torch.device:
    """On CUDA, GPU ``local_rank`` (one GPU per process); elsewhere ``device`` as it is."""
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise RuntimeError(
            f"LOCAL_RANK={local_rank}, but this machine has {count} CUDA GPU(s): start at most "
            f"{count} processes per machine (torchrun --nproc_per_node {count}).")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def from_rank0(obj):
    """``obj`` as rank 0 has it, in every process (a pickled broadcast; a no-op in a single
    process): one decision, one download result, one epoch row for all."""
    if not distributed().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every process (nothing to wait for in a single process)."""
    if distributed().enabled:
        dist.barrier()


def cleanup_distributed() -> None:
    """Stop the process group, if one runs (at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
