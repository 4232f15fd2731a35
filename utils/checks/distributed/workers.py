"""What runs on each rank for the checks of exercises 10.3–10.6 (importable, so new processes can find it).

Each worker runs the learner's function (found by :func:`utils.distributed.resolve`) next to PyTorch's own
implementation on identical models and data, and returns plain tensors for the parent to compare. Models are
float64, so a right answer matches to ~1e-12 and every wrong factor is exact."""
from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from utils import distributed

AVERAGING_CASES = ["mlp", "frozen", "wide"]


def averaging_model(case: str) -> nn.Module:
    torch.manual_seed({"mlp": 1, "frozen": 2, "wide": 3}[case])
    if case == "mlp":
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    elif case == "frozen":  # a frozen embedding-like first layer: its parameters have no gradient
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 2))
        model[0].requires_grad_(False)
    else:
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    return model.double()


def _batch(case: str, rank: int, model: nn.Module):
    generator = torch.Generator().manual_seed(100 * rank + len(case))
    features = next(model.parameters()).shape[1]
    outputs = list(model.parameters())[-1].shape[0]
    return (torch.randn(6, features, generator=generator, dtype=torch.float64),
            torch.randint(0, outputs, (6,), generator=generator))


class _Counter:
    """Wraps dist.all_reduce to record the number of elements of every call."""

    def __init__(self):
        self.sizes: list[int] = []
        self.original = dist.all_reduce

    def __enter__(self):
        def counted(tensor, *args, **kwargs):
            self.sizes.append(tensor.numel())
            return self.original(tensor, *args, **kwargs)
        dist.all_reduce = counted
        return self

    def __exit__(self, *exc):
        dist.all_reduce = self.original


def averaging_worker(reference, bucket_cap=None) -> list[dict]:
    """For each case: local gradients, the learner's averaged ones, DDP's, parameter changes, all_reduce sizes."""
    learner = distributed.resolve(reference)
    rank = dist.get_rank()
    out = []
    for case in AVERAGING_CASES:
        model = averaging_model(case)
        reference_model = nn.parallel.DistributedDataParallel(copy.deepcopy(model), bucket_cap_mb=1)
        x, y = _batch(case, rank, model)
        F.cross_entropy(reference_model(x), y).backward()
        F.cross_entropy(model(x), y).backward()
        names = [name for name, _ in model.named_parameters()]
        local = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
        before = [p.detach().clone() for p in model.parameters()]
        with _Counter() as counter:
            returned = learner(model) if bucket_cap is None else learner(model, bucket_cap)
        out.append({
            "case": case, "names": names, "local": local,
            "got": [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
            "ddp": [None if p.grad is None else p.grad.clone() for p in reference_model.module.parameters()],
            "params_changed": [not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters())],
            "calls": counter.sizes, "returned": type(returned).__name__ if returned is not None else None,
            "requires_grad": [p.requires_grad for p in model.parameters()],
            "numels": [p.numel() for p in model.parameters()],
        })
    return out


# ---------------------------------------------------------------------------------------------- GPipe
GPIPE_CASES = [(8, 4, 6, 5, 3), (6, 3, 4, 7, 4), (4, 1, 5, 6, 2)]  # (batch, m, features, hidden, classes)


def gpipe_model(case) -> nn.Sequential:
    batch, m, features, hidden, classes = case
    torch.manual_seed(batch * 7 + m)
    return nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, classes))


def gpipe_data(case):
    batch, m, features, hidden, classes = case
    generator = torch.Generator().manual_seed(batch + 31 * m)
    return torch.randn(batch, features, generator=generator), torch.randint(0, classes, (batch,), generator=generator)


def gpipe_stage(model: nn.Sequential, rank: int) -> nn.Sequential:
    return nn.Sequential(*list(model)[:2]) if rank == 0 else nn.Sequential(*list(model)[2:])


def gpipe_worker(reference) -> list[dict]:
    """For each case: the learner's stage gradients and loss, and ScheduleGPipe's, on this rank's stage."""
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

    learner = distributed.resolve(reference)
    rank = dist.get_rank()
    out = []
    for case in GPIPE_CASES:
        batch, m, features, hidden, classes = case
        x, y = gpipe_data(case)
        reference_stage = gpipe_stage(gpipe_model(case), rank)
        schedule = ScheduleGPipe(PipelineStage(reference_stage, rank, 2, torch.device("cpu")), m,
                                 loss_fn=F.cross_entropy)
        losses = []
        schedule.step(x) if rank == 0 else schedule.step(target=y, losses=losses)
        stage = gpipe_stage(gpipe_model(case), rank)
        dist.barrier()
        loss = learner(stage, x if rank == 0 else y, m, hidden, F.cross_entropy)
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            loss = loss.item()
        out.append({"case": case, "names": [n for n, _ in stage.named_parameters()],
                    "got": [None if p.grad is None else p.grad.clone() for p in stage.parameters()],
                    "ref": [p.grad.clone() for p in reference_stage.parameters()],
                    "loss": loss if isinstance(loss, (float, int, type(None))) else repr(loss)[:80],
                    "ref_loss": float(sum(loss_j.item() for loss_j in losses) / m) if losses else None})
    return out


# ---------------------------------------------------------------------------------------------- FSDP
FSDP_CASES = [(4, 5, 3), (3, 2, 7), (6, 4, 2)]  # Linear(features, hidden) -> Tanh -> Linear(hidden, classes)


def fsdp_model(case) -> nn.Sequential:
    features, hidden, classes = case
    torch.manual_seed(features * 13 + hidden)
    return nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, classes))


def fsdp_data(case, rank):
    features, hidden, classes = case
    generator = torch.Generator().manual_seed(rank * 17 + features)
    return torch.randn(4, features, generator=generator), torch.randint(0, classes, (4,), generator=generator)


def fsdp_worker(gather_reference, scatter_reference) -> list[dict]:
    """For each case: the learner's gathered parameters and gradient shards, and fully_shard's shards."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    gather, scatter = distributed.resolve(gather_reference), distributed.resolve(scatter_reference)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world_size,))
    out = []
    for case in FSDP_CASES:
        x, y = fsdp_data(case, rank)
        sharded = fsdp_model(case)
        for layer in sharded:
            if isinstance(layer, nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        F.cross_entropy(sharded(x), y).backward()
        reference_shards = {n: p.grad.to_local().clone() for n, p in sharded.named_parameters()}
        model = fsdp_model(case)
        full = dict(model.named_parameters())
        gathered, shards = {}, {}
        for name, parameter in full.items():
            pieces = parameter.detach().chunk(world_size)
            shard = pieces[rank].clone() if rank < len(pieces) else parameter.detach()[:0].clone()
            gathered[name] = gather(shard, len(parameter))
        usable = all(isinstance(g, torch.Tensor) and g.shape == full[n].shape for n, g in gathered.items())
        if usable:
            leaves = {n: g.detach().clone().requires_grad_() for n, g in gathered.items()}
            loss = F.cross_entropy(torch.func.functional_call(model, leaves, (x,)), y)
            loss.backward()
            grads = {n: leaves[n].grad for n in leaves}
        else:  # the gather is wrong: the scatter is still checked, on the true full gradients
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            grads = {n: p.grad for n, p in model.named_parameters()}
        for name, grad in grads.items():
            shards[name] = scatter(grad.clone())
        out.append({"case": case, "names": list(full), "full": {n: p.detach().clone() for n, p in full.items()},
                    "gathered": {n: g.detach().clone() if isinstance(g, torch.Tensor) else repr(g)[:60]
                                 for n, g in gathered.items()},
                    "full_grads": {n: g.detach().clone() for n, g in grads.items()},
                    "got": {n: s.detach().clone() if isinstance(s, torch.Tensor) else repr(s)[:60]
                            for n, s in shards.items()},
                    "ref": reference_shards})
    return out
