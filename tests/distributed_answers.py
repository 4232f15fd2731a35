"""Wrong answers to Chapter 10's exercises that run on real ranks (10.3–10.6), written as a learner writes them.

They live in a module of their own, without pytest, so that the check's new processes import them quickly."""
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F


# ================================================================================================ Exercise 10.3
def average_stub(model):
    raise NotImplementedError("Exercise 10.3: write the body of `average_gradients`, then run the check cell below.")


def average_sum_only(model):  # all_reduce sums; forgot the mean
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)


def average_hard_coded_two(model):  # written for 2 GPUs
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= 2


def average_divided_twice(model):
    n = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            p.grad /= n
            dist.all_reduce(p.grad)
            p.grad /= n


def average_no_reduce(model):  # divides, never communicates
    for p in model.parameters():
        if p.grad is not None:
            p.grad /= dist.get_world_size()


def average_crashes_on_frozen(model):  # no check for .grad None
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()


def average_parameters(model):  # averages the weights, not the gradients
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.data)
            p.data /= dist.get_world_size()


def average_weights_only(model):  # skips the biases
    for name, p in model.named_parameters():
        if p.grad is not None and "weight" in name:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def average_returns_list(model):  # returns new tensors instead of writing .grad
    out = []
    for p in model.parameters():
        if p.grad is not None:
            g = p.grad.clone()
            dist.all_reduce(g)
            out.append(g / dist.get_world_size())
    return out


def average_broadcast(model):  # everyone takes rank 0's gradient
    for p in model.parameters():
        if p.grad is not None:
            dist.broadcast(p.grad, src=0)


# ================================================================================================ Exercise 10.4
def _flush(bucket, world_size):
    flat = torch.cat([p.grad.flatten() for p in bucket])
    dist.all_reduce(flat)
    flat /= world_size
    for p, piece in zip(bucket, flat.split([p.numel() for p in bucket])):
        p.grad.copy_(piece.view_as(p.grad))


def bucketed_forgets_remainder(model, bucket_cap):
    bucket, size = [], 0
    for p in reversed([p for p in model.parameters() if p.grad is not None]):
        bucket.append(p)
        size += p.numel()
        if size >= bucket_cap:
            _flush(bucket, dist.get_world_size())
            bucket, size = [], 0


def bucketed_one_per_parameter(model, bucket_cap):
    for p in reversed([p for p in model.parameters() if p.grad is not None]):
        _flush([p], dist.get_world_size())


def bucketed_ignores_cap(model, bucket_cap):
    _flush([p for p in model.parameters() if p.grad is not None], dist.get_world_size())


def bucketed_drops_boundary(model, bucket_cap):  # the parameter that overflows the bucket is never added
    bucket, size = [], 0
    for p in reversed([p for p in model.parameters() if p.grad is not None]):
        if size + p.numel() >= bucket_cap and bucket:
            _flush(bucket, dist.get_world_size())
            bucket, size = [], 0
            continue
        bucket.append(p)
        size += p.numel()
    if bucket:
        _flush(bucket, dist.get_world_size())


def bucketed_no_copy_back(model, bucket_cap):  # reduces a concatenated copy and throws it away
    params = [p for p in model.parameters() if p.grad is not None]
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)


def bucketed_forward_order(model, bucket_cap):  # forward order: other buckets than DDP's
    bucket, size = [], 0
    for p in [p for p in model.parameters() if p.grad is not None]:
        bucket.append(p)
        size += p.numel()
        if size >= bucket_cap:
            _flush(bucket, dist.get_world_size())
            bucket, size = [], 0
    if bucket:
        _flush(bucket, dist.get_world_size())


# ================================================================================================ Exercise 10.5
def _gpipe(stage, batch, n_micro, hidden, loss_fn, scale=True, mean_loss=True, reverse_targets=False,
           keep_graph=True):
    rank = dist.get_rank()
    micro = list(batch.chunk(n_micro))
    if rank == 0:
        outputs = []
        for x in micro:
            out = stage(x)
            dist.send(out.detach(), dst=1)
            outputs.append(out if keep_graph else out.detach())
        for out in outputs:
            grad = torch.empty_like(out)
            dist.recv(grad, src=1)
            if out.requires_grad:
                out.backward(grad)
        return None
    if reverse_targets:
        micro = micro[::-1]
    received, losses = [], []
    for targets in micro:
        x = torch.empty(len(targets), hidden)
        dist.recv(x, src=0)
        x.requires_grad_()
        received.append(x)
        losses.append(loss_fn(stage(x), targets))
    for x, loss in zip(received, losses):
        (loss / n_micro if scale else loss).backward()
        dist.send(x.grad, dst=0)
    total = sum(loss.item() for loss in losses)
    return total / n_micro if mean_loss else total


def gpipe_unscaled(stage, batch, n_micro, hidden, loss_fn):
    return _gpipe(stage, batch, n_micro, hidden, loss_fn, scale=False)


def gpipe_sum_loss(stage, batch, n_micro, hidden, loss_fn):
    return _gpipe(stage, batch, n_micro, hidden, loss_fn, mean_loss=False)


def gpipe_reversed_targets(stage, batch, n_micro, hidden, loss_fn):
    return _gpipe(stage, batch, n_micro, hidden, loss_fn, reverse_targets=True)


def gpipe_detached_outputs(stage, batch, n_micro, hidden, loss_fn):
    return _gpipe(stage, batch, n_micro, hidden, loss_fn, keep_graph=False)


def gpipe_no_requires_grad(stage, batch, n_micro, hidden, loss_fn):
    rank = dist.get_rank()
    if rank == 0:
        return _gpipe(stage, batch, n_micro, hidden, loss_fn)
    losses = []
    received = []
    for targets in batch.chunk(n_micro):
        x = torch.empty(len(targets), hidden)
        dist.recv(x, src=0)
        received.append(x)
        losses.append(loss_fn(stage(x), targets))
    for x, loss in zip(received, losses):
        (loss / n_micro).backward()
        dist.send(x.grad, dst=0)
    return sum(loss.item() for loss in losses) / n_micro


def gpipe_deadlock(stage, batch, n_micro, hidden, loss_fn):  # both ranks receive first
    rank = dist.get_rank()
    buffer = torch.empty(len(batch) // n_micro, hidden)
    dist.recv(buffer, src=1 - rank)


# ================================================================================================ Exercise 10.6
def _real_rows(rows, world_size):
    real = [len(c) for c in torch.empty(rows).chunk(world_size)]
    return real + [0] * (world_size - len(real))


def gather_right(shard, rows):
    world_size = dist.get_world_size()
    per_rank = math.ceil(rows / world_size)
    padded = torch.zeros(per_rank, *shard.shape[1:], dtype=shard.dtype)
    padded[:len(shard)] = shard
    full = torch.empty(per_rank * world_size, *shard.shape[1:], dtype=shard.dtype)
    dist.all_gather_into_tensor(full, padded)
    return torch.cat([piece[:n] for piece, n in zip(full.split(per_rank), _real_rows(rows, world_size))])


def gather_keeps_padding(shard, rows):
    world_size = dist.get_world_size()
    per_rank = math.ceil(rows / world_size)
    padded = torch.zeros(per_rank, *shard.shape[1:], dtype=shard.dtype)
    padded[:len(shard)] = shard
    full = torch.empty(per_rank * world_size, *shard.shape[1:], dtype=shard.dtype)
    dist.all_gather_into_tensor(full, padded)
    return full


def gather_reversed_order(shard, rows):
    world_size = dist.get_world_size()
    per_rank = math.ceil(rows / world_size)
    padded = torch.zeros(per_rank, *shard.shape[1:], dtype=shard.dtype)
    padded[:len(shard)] = shard
    full = torch.empty(per_rank * world_size, *shard.shape[1:], dtype=shard.dtype)
    dist.all_gather_into_tensor(full, padded)
    pieces = [piece[:n] for piece, n in zip(full.split(per_rank), _real_rows(rows, world_size))]
    return torch.cat(pieces[::-1])


def gather_no_padding(shard, rows):  # unequal inputs: the collective refuses
    world_size = dist.get_world_size()
    full = torch.empty(len(shard) * world_size, *shard.shape[1:], dtype=shard.dtype)
    dist.all_gather_into_tensor(full, shard.contiguous())
    return full[:rows]


def scatter_right(full_grad):
    world_size, rank = dist.get_world_size(), dist.get_rank()
    per_rank = math.ceil(len(full_grad) / world_size)
    chunks = list(full_grad.chunk(world_size))
    chunks += [full_grad[:0]] * (world_size - len(chunks))
    padded = torch.cat([F.pad(c, (0, 0) * (c.dim() - 1) + (0, per_rank - len(c))) for c in chunks])
    mine = torch.empty(per_rank, *full_grad.shape[1:], dtype=full_grad.dtype)
    dist.reduce_scatter_tensor(mine, padded)
    return mine[:len(chunks[rank])] / world_size


def scatter_sum(full_grad):
    return scatter_right(full_grad) * dist.get_world_size()


def scatter_keeps_padding(full_grad):
    world_size = dist.get_world_size()
    per_rank = math.ceil(len(full_grad) / world_size)
    chunks = list(full_grad.chunk(world_size))
    chunks += [full_grad[:0]] * (world_size - len(chunks))
    padded = torch.cat([F.pad(c, (0, 0) * (c.dim() - 1) + (0, per_rank - len(c))) for c in chunks])
    mine = torch.empty(per_rank, *full_grad.shape[1:], dtype=full_grad.dtype)
    dist.reduce_scatter_tensor(mine, padded)
    return mine / world_size


def scatter_full_average(full_grad):  # an all_reduce: every rank keeps everything
    grad = full_grad.clone()
    dist.all_reduce(grad)
    return grad / dist.get_world_size()


def scatter_reversed_order(full_grad):  # blocks in reverse rank order: rank r gets rank N−1−r's rows
    world_size, rank = dist.get_world_size(), dist.get_rank()
    per_rank = math.ceil(len(full_grad) / world_size)
    chunks = list(full_grad.chunk(world_size))
    chunks += [full_grad[:0]] * (world_size - len(chunks))
    padded = torch.cat([F.pad(c, (0, 0) * (c.dim() - 1) + (0, per_rank - len(c))) for c in chunks[::-1]])
    mine = torch.empty(per_rank, *full_grad.shape[1:], dtype=full_grad.dtype)
    dist.reduce_scatter_tensor(mine, padded)
    return mine[:len(chunks[world_size - 1 - rank])] / world_size


def scatter_own_rows(full_grad):  # no communication: this rank's rows of its own gradient
    world_size, rank = dist.get_world_size(), dist.get_rank()
    chunks = list(full_grad.chunk(world_size))
    return chunks[rank] if rank < len(chunks) else full_grad[:0]
