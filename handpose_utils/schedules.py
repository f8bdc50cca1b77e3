"""Learning-rate schedules, stepped once per epoch, and how one continues when a run resumes."""

from __future__ import annotations

import math
import warnings

from torch.optim import lr_scheduler as sch


def make_scheduler(optimizer, scheduler, epochs: int, warmup_epochs: int = 0):
    """A learning-rate schedule stepped once per epoch: ``"cosine"`` (decay to 0 after the
    warm-up; warm-up epoch ``e`` runs at ``(e + 1) / (warmup_epochs + 1)`` of the rate, so even
    one warm-up epoch trains), ``"step"`` (x 0.1 every third of the epochs), None (constant), or
    a callable ``f(optimizer)`` / a scheduler object, used as is."""
    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler(optimizer) if callable(scheduler) and not hasattr(
            scheduler, "state_dict") else scheduler
    main_epochs = max(1, epochs - warmup_epochs)
    if scheduler == "cosine":
        main = sch.CosineAnnealingLR(optimizer, T_max=main_epochs)
    elif scheduler == "step":
        main = sch.StepLR(optimizer, step_size=max(1, main_epochs // 3), gamma=0.1)
    elif scheduler is None:
        main = sch.LambdaLR(optimizer, lambda e: 1.0) if warmup_epochs else None
    else:
        raise ValueError(
            f"unknown scheduler {scheduler!r}: use 'cosine', 'step', None or a callable")
    if not warmup_epochs:
        return main
    warm = sch.LinearLR(optimizer, start_factor=1 / (warmup_epochs + 1), total_iters=warmup_epochs)
    return sch.SequentialLR(optimizer, [warm, main], milestones=[warmup_epochs])


def _cosine_tail(optimizer, start: int, factor: float, epochs: int, done: int):
    """A cosine from ``factor`` x the base rate after epoch ``start`` down towards 0 over the
    epochs up to ``epochs`` (the last one still trains), positioned for epoch ``done + 1``."""
    # k = 0 for epoch start + 1; last_epoch = k - 1 makes the constructor's own step land on k
    # (needs initial_lr, which the restored optimiser state carries)
    return sch.LambdaLR(optimizer, lambda k: factor * (1 + math.cos(
        math.pi * (k + 1) / (epochs - start + 1))) / 2, last_epoch=done - start - 1)


def resume_schedule(sched, scheduler, optimizer, ckpt: dict, epochs: int, warmup_epochs: int,
                    run_config: dict, log, restart: bool = False):
    """The schedule to continue a run with. Unchanged plan: the saved state. When ``epochs``
    changed, the old curve would be wrong (a 2-epoch cosine resumed to 5 would climb back up),
    so a cosine is re-planned: in its warm-up, the fresh plan; after it, a cosine down over the
    remaining epochs from the last epoch's rate, or with ``restart`` from the base rate (SGDR's
    warm restart, no warm-up: the weights are trained), logged with its rates and recorded in
    ``run_config`` so a later resume rebuilds it. Other schedules continue from their saved
    state, with a note."""
    saved = ckpt.get("config") or {}
    done, old_epochs = int(ckpt["epoch"]), saved.get("epochs", epochs)
    tail = saved.get("cosine_tail_epoch"), saved.get("cosine_tail_factor")
    if sched is None or done >= epochs:  # nothing left to schedule
        return sched
    if scheduler != "cosine" or (old_epochs == epochs and tail[0] is None):
        if ckpt.get("scheduler"):
            sched.load_state_dict(ckpt["scheduler"])
        if old_epochs != epochs and log:
            kind = (f"{scheduler!r} schedule" if isinstance(scheduler, str) or scheduler is None
                    else "custom scheduler")
            log(f"epochs changed from {old_epochs} to {epochs}: the {kind} continues from its "
                "saved state (built for the old length; if it depends on the number of epochs, "
                "start a new run with resume=False" + (
                    "; restart_schedule restarts a cosine only)" if restart else ")"))
        return sched
    base = optimizer.param_groups[0]["initial_lr"]
    if old_epochs == epochs:  # a re-planned cosine, interrupted again
        start, factor = int(tail[0]), float(tail[1])
    elif done <= warmup_epochs:
        for group in optimizer.param_groups:  # the chained schedulers start from the base rate
            group["lr"] = group["initial_lr"]
        fresh = make_scheduler(optimizer, "cosine", epochs, warmup_epochs)
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose
            warnings.simplefilter("ignore")
            for _ in range(done):
                fresh.step()
        if log:
            log(f"epochs changed from {old_epochs} to {epochs} during the warm-up: the "
                f"schedule follows the plan for {epochs} epochs")
        return fresh
    else:  # a restart's factor puts its first epoch exactly at the base rate
        start, factor = done, (2 / (1 + math.cos(math.pi / (epochs - done + 1))) if restart
                               else ckpt["history"][-1]["lr"] / base)
    run_config.update(cosine_tail_epoch=start, cosine_tail_factor=factor)
    new = _cosine_tail(optimizer, start, factor, epochs, done)
    if log and old_epochs != epochs:
        first, last = optimizer.param_groups[0]["lr"], base * new.lr_lambdas[0](epochs - start - 1)
        log(f"epochs changed from {old_epochs} to {epochs}: epochs {done + 1}-{epochs} "
            f"{'restart' if restart else 'continue'} the cosine: lr {first:.2e} -> {last:.2e} "
            f"({first / base:.1%} of the base rate {base:.2e})" + ("" if restart else (
                "; restart_schedule=True (--restart-schedule) runs a new cosine from the base "
                "rate over them instead")))
    return new
