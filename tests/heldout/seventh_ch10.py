"""Seventh blind held-out set, Chapter 10 (distributed training): wrong answers written as a learner writes the cell.

Written without reading the checks or seeing any of their messages, from the student notebook's prompts, stubs and
check calls, the reference solutions and ``utils/distributed.py`` (the launcher) only. It aims at the mistakes
learners make most often in this chapter: what eq. (10.2) shards at which ZeRO stage (and what it never shards), the
two phases and the byte count of the ring all-reduce (eq. (10.3)), the missing division by the world size after a
summing all-reduce (eq. (10.1)), the bucket bookkeeping of DDP, the 1/m scaling and the send/recv pairing of a GPipe
step (eqs. (10.5), (10.6)), and the padding of FSDP's collectives (eq. (10.7)). The worker functions of 10.3–10.6
run on every rank of the check's process group, so each is written as the learner's exercise cell is: it uses only
``torch``, ``dist``, ``F`` and ``math``. The half of the two-function exercise 10.6 that is not wrong is the
chapter's reference solution, so each answer holds exactly one mistake.
"""
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("10_distributed")

REGISTRY = Registry("10", {
    "10.1": ("check_memory_per_rank", "memory_per_rank"),
    "10.2": ("check_ring_all_reduce", "ring_all_reduce"),
    "10.3": ("check_average_gradients", "average_gradients"),
    "10.4": ("check_average_gradients_bucketed", "average_gradients_bucketed"),
    "10.5": ("check_gpipe_step", "gpipe_step"),
    "10.6": ("check_fsdp_collectives", "all_gather_parameter"),  # the first of two functions; see arguments
})
wrong = REGISTRY.wrong

with_reference_reduce_scatter = lambda gather: (gather, REF["reduce_scatter_gradient"])  # noqa: E731
with_reference_all_gather = lambda scatter: (REF["all_gather_parameter"], scatter)  # noqa: E731

SUM_NOT_MEAN = [r"\bsum\w*[^.?]{0,40}(not|instead of|rather than)[^.?]{0,15}(mean|average)",
                r"(divid|divis)\w*[^.?]{0,40}(world[_ ]size|number of ranks|\bN\b)",
                r"(not|never|forgot\w*|missing|without)[^.?]{0,30}(divid|divis|averag)\w*",
                r"(N|world[_ ]size|number of ranks|\d)\s*(×|times|x)\s*(too (large|big)|the (mean|average)|larger)",
                r"(mean|average)[^.?]{0,30}(needs?|requires?|is)[^.?]{0,30}divi"]


# ----- Exercise 10.1: memory per rank with activations (eq. (10.2)) ---------------------------------------------

@wrong("10.1", "activation_bytes divided by world_size like a sharded state: activations belong to the rank's own "
               "batch and are never sharded",
       names=[r"activation\w*[^.?]{0,50}(not|never|no stage|aren't|isn't|are not|is not)[^.?]{0,20}(shard|divid|split)",
              r"(shard|divid|split)\w*[^.?]{0,30}(the )?activation",
              r"activation\w*[^.?]{0,40}(/\s*N\b|÷\s*N\b|by (N|world_size|the number of ranks))",
              r"activation\w*[^.?]{0,40}(once|undivided|whole|in full|as (it is|they are))"])
def memory_activations_sharded(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    param_bytes, grad_bytes, optimizer_bytes = (2, 2, 12) if mixed_precision else (4, 4, 8)
    params = param_bytes * num_params / (world_size if stage >= 3 else 1)
    grads = grad_bytes * num_params / (world_size if stage >= 2 else 1)
    optimizer = optimizer_bytes * num_params / (world_size if stage >= 1 else 1)
    return (params + grads + optimizer + activation_bytes) / (world_size if stage >= 1 else 1)


@wrong("10.1", "stages not cumulative: stage s shards only its own state (stage 2 only the gradients, stage 3 only "
               "the parameters), the optimizer state is whole again at stages 2 and 3",
       names=[r"cumulativ\w*[^.?]{0,40}(stage|shard)|(stage|shard)\w*[^.?]{0,40}cumulativ", r"stage (2|3)[^.?]{0,60}(also|still|as well|too)[^.?]{0,30}(shard|optimi[sz]er|gradient)",
              r"(optimi[sz]er|optimizer state)[^.?]{0,50}(from stage 1 on|every stage|stages? ≥ ?1|stage\s*>=?\s*1|at stages? (2|3)|unsharded at)",
              r"(each|every|higher|later) stage[^.?]{0,40}(keeps|adds to|includes|builds on)",
              r"(only|just) (one|its own|the one) (state|part)[^.?]{0,30}(shard|per stage)"])
def memory_stages_not_cumulative(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    param_bytes, grad_bytes, optimizer_bytes = (2, 2, 12) if mixed_precision else (4, 4, 8)
    params = param_bytes * num_params / (world_size if stage == 3 else 1)
    grads = grad_bytes * num_params / (world_size if stage == 2 else 1)
    optimizer = optimizer_bytes * num_params / (world_size if stage == 1 else 1)
    return params + grads + optimizer + activation_bytes


@wrong("10.1", "mixed precision with K = 8 (Adam's two fp32 moments only): the fp32 master copy of the weights "
               "forgotten, 12Ψ of model state instead of 16Ψ",
       names=[r"master", r"\bK\s*=\s*12", r"\b12 bytes", r"(fp32|full[- ]precision|float32) (copy|weights|parameters)",
              r"(two|2) moments[^.?]{0,40}(plus|and|\+)[^.?]{0,30}(copy|weights|parameters)",
              r"\b16\s*Ψ[^.?]{0,30}(not|instead|rather)|\b12\s*Ψ[^.?]{0,30}(instead|not|rather)"])
def memory_mixed_k_eight(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    param_bytes, grad_bytes, optimizer_bytes = (2, 2, 8) if mixed_precision else (4, 4, 8)
    params = param_bytes * num_params / (world_size if stage >= 3 else 1)
    grads = grad_bytes * num_params / (world_size if stage >= 2 else 1)
    optimizer = optimizer_bytes * num_params / (world_size if stage >= 1 else 1)
    return params + grads + optimizer + activation_bytes


# ----- Exercise 10.2: the ring all-reduce, simulated (eq. (10.3)) -----------------------------------------------

@wrong("10.2", "the all-gather phase adds the received chunk, as the reduce-scatter does, instead of replacing the "
               "receiver's copy: chunks are counted more than once",
       names=[r"all[- ]gather[^.?]{0,60}(add|sum|accumulat)\w*[^.?]{0,40}(instead|not|rather|replac|overwrit|cop(y|ies))",
              r"(replac|overwrit|cop(y|ies))\w*[^.?]{0,40}(not|instead of|rather than) (add|sum|accumulat)",
              r"(add|sum|accumulat)\w*[^.?]{0,30}(instead of|not|rather than) (replac|overwrit|cop)",
              r"(counted|added|summed) (more than once|twice|again)",
              r"(second|gather) phase[^.?]{0,50}(add|sum|replac|overwrit)"])
def ring_gather_adds(tensors):
    n = len(tensors)
    chunks = [list(t.clone().chunk(n)) for t in tensors]
    bytes_sent = [0] * n
    for phase in range(2):
        for step in range(n - 1):
            offset = 0 if phase == 0 else 1
            sent = [(r, (r + offset - step) % n, chunks[r][(r + offset - step) % n].clone()) for r in range(n)]
            for r, c, chunk in sent:
                chunks[(r + 1) % n][c] = chunks[(r + 1) % n][c] + chunk
                bytes_sent[r] += chunk.numel() * chunk.element_size()
    return [torch.cat(row) for row in chunks], bytes_sent


@wrong("10.2", "reduce-scatter sends chunk (r + s) mod N instead of (r − s) mod N: the running sums travel against "
               "the ring, so no rank completes a chunk (right only for N = 2)",
       names=[r"\(r\s*[−-]\s*s(tep)?\)", r"r\s*\+\s*s(tep)?\b[^.?]{0,40}(instead|not|rather|wrong)",
              r"(chunk index|which chunk|wrong chunk)[^.?]{0,50}(reduce[- ]scatter|step|send)",
              r"reduce[- ]scatter[^.?]{0,60}(chunk index|which chunk|wrong chunk|incomplete|not the (full|complete) sum)",
              r"(no|not every|none of the) ranks?[^.?]{0,30}(complete|full) (sum|chunk)"])
def ring_reduce_scatter_plus_step(tensors):
    n = len(tensors)
    chunks = [list(t.clone().chunk(n)) for t in tensors]
    bytes_sent = [0] * n
    for step in range(n - 1):
        sent = [(r, (r + step) % n, chunks[r][(r + step) % n].clone()) for r in range(n)]
        for r, c, chunk in sent:
            chunks[(r + 1) % n][c] = chunks[(r + 1) % n][c] + chunk
            bytes_sent[r] += chunk.numel() * chunk.element_size()
    for step in range(n - 1):
        sent = [(r, (r + 1 - step) % n, chunks[r][(r + 1 - step) % n].clone()) for r in range(n)]
        for r, c, chunk in sent:
            chunks[(r + 1) % n][c] = chunk
            bytes_sent[r] += chunk.numel() * chunk.element_size()
    return [torch.cat(row) for row in chunks], bytes_sent


@wrong("10.2", "bytes_sent counts the whole tensor each step (t.numel() * t.element_size()) instead of the one "
               "chunk of S/N bytes: 2(N − 1)·S, N times eq. (10.3)",
       names=[r"(whole|full|entire) tensor[^.?]{0,50}(instead|not|rather|per step|each step|every step)",
              r"(one|a single|each) chunk[^.?]{0,30}(S\s*/\s*N|S ?÷ ?N|1/N|of the tensor)",
              r"\bN\s*(×|times|x)\s*(too (many|large|big|much)|more|eq)", r"(factor|times) (of )?N\b",
              r"2\s*\(N\s*[−-]\s*1\)\s*[·*]?\s*S\b(?!\s*/)"])
def ring_bytes_whole_tensor(tensors):
    n = len(tensors)
    chunks = [list(t.clone().chunk(n)) for t in tensors]
    bytes_sent = [0] * n
    for step in range(n - 1):
        sent = [(r, (r - step) % n, chunks[r][(r - step) % n].clone()) for r in range(n)]
        for r, c, chunk in sent:
            chunks[(r + 1) % n][c] = chunks[(r + 1) % n][c] + chunk
            bytes_sent[r] += tensors[r].numel() * tensors[r].element_size()
    for step in range(n - 1):
        sent = [(r, (r + 1 - step) % n, chunks[r][(r + 1 - step) % n].clone()) for r in range(n)]
        for r, c, chunk in sent:
            chunks[(r + 1) % n][c] = chunk
            bytes_sent[r] += tensors[r].numel() * tensors[r].element_size()
    return [torch.cat(row) for row in chunks], bytes_sent


@wrong("10.2", "chunks are views of the inputs (t.chunk(n) without clone) and the reduce-scatter adds in place "
               "(+=): the caller's tensors are overwritten with partial sums",
       names=[r"(modif|mutat|overwr|chang|alter|corrupt)\w*[^.?]{0,40}(input|caller|tensors (you were )?given|argument)",
              r"in[- ]place", r"\.clone\(\)", r"views? (of|into|on) the (input|caller|original)",
              r"(copy|clone)[^.?]{0,30}(the )?(inputs?|tensors) (first|before)"])
def ring_in_place_on_inputs(tensors):
    n = len(tensors)
    chunks = [list(t.chunk(n)) for t in tensors]
    bytes_sent = [0] * n
    for step in range(n - 1):
        sent = [(r, (r - step) % n, chunks[r][(r - step) % n].clone()) for r in range(n)]
        for r, c, chunk in sent:
            chunks[(r + 1) % n][c] += chunk
            bytes_sent[r] += chunk.numel() * chunk.element_size()
    for step in range(n - 1):
        sent = [(r, (r + 1 - step) % n, chunks[r][(r + 1 - step) % n].clone()) for r in range(n)]
        for r, c, chunk in sent:
            chunks[(r + 1) % n][c] = chunk
            bytes_sent[r] += chunk.numel() * chunk.element_size()
    return [torch.cat(row) for row in chunks], bytes_sent


# ----- Exercise 10.3: gradient averaging with all_reduce (eq. (10.1)) -------------------------------------------

@wrong("10.3", "all_reduce alone: every .grad is the sum over ranks, never divided by the world size",
       names=SUM_NOT_MEAN)
def average_gradients_sum_only(model):
    for parameter in model.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)


@wrong("10.3", "divided by a hard-coded 2 (the ranks of the notebook's demo), not dist.get_world_size(): 1.5 times "
               "the mean on the check's 3 ranks",
       names=[r"hard[- ]?cod", r"(divid\w*|/)\s*(by )?(2|two)\b[^.?]{0,50}(3|three|world[_ ]size|instead|not|rather)",
              r"(use|call|from|not|instead of)\s*`?(dist\.)?get_world_size",
              r"(3|three) ranks[^.?]{0,40}(divid|\b2\b|two)", r"(1\.5|3\s*/\s*2|3 ?÷ ?2)\s*(×|times|x)",
              r"(fixed|constant|literal) (number|2|divisor)"])
def average_gradients_divide_by_two(model):
    for parameter in model.parameters():
        if parameter.grad is None:
            continue
        dist.all_reduce(parameter.grad)
        parameter.grad /= 2


@wrong("10.3", "dist.all_reduce(p.grad / world_size): the all-reduce sums a temporary tensor that is thrown away, "
               "so each .grad keeps the rank's own local gradient",
       names=[r"(temporar|copy|new tensor)\w*[^.?]{0,60}(thrown away|discarded|lost|never (written|copied|stored|assigned)|not (written|stored|assigned))",
              r"in[- ]place[^.?]{0,40}(\.grad|gradient|tensor)",
              r"(\.grad|gradients?)[^.?]{0,40}(unchanged|untouched|never (averaged|reduced|changed|updated)|not (averaged|reduced|communicated|updated|changed)|still (local|the rank'?s? own))",
              r"(own|local)[^.?]{0,20}gradients?[^.?]{0,40}(not|never|unchanged|unaveraged|instead)",
              r"(write|assign|copy)\w*[^.?]{0,30}back"])
def average_gradients_reduce_a_temporary(model):
    world_size = dist.get_world_size()
    for parameter in model.parameters():
        if parameter.grad is None:
            continue
        dist.all_reduce(parameter.grad / world_size)


# ----- Exercise 10.4: bucketed averaging, as DDP does -----------------------------------------------------------

@wrong("10.4", "the bucket left over after the loop is never sent: the first parameters (last in reverse order) keep "
               "their local gradients",
       names=[r"(last|leftover|left[- ]over|remaining|final|partial|remainder|unfilled|incomplete)[^.?]{0,30}bucket",
              r"bucket[^.?]{0,50}(never|not) (sent|flushed|all[- ]?reduced|reduced|averaged)",
              r"(first|earliest) (layers?|parameters?)[^.?]{0,50}(never|not) (averaged|reduced|sent|all[- ]?reduced)",
              r"(after|end of) the loop", r"remainder"])
def bucketed_drops_last_bucket(model, bucket_cap):
    world_size = dist.get_world_size()
    bucket, size = [], 0
    for parameter in reversed([p for p in model.parameters() if p.grad is not None]):
        bucket.append(parameter)
        size += parameter.numel()
        if size >= bucket_cap:
            flat = torch.cat([p.grad.flatten() for p in bucket])
            dist.all_reduce(flat)
            flat /= world_size
            for p, piece in zip(bucket, flat.split([p.numel() for p in bucket])):
                p.grad.copy_(piece.view_as(p.grad))
            bucket, size = [], 0


@wrong("10.4", "parameters walked in model (forward) order, not reversed: the buckets are not the ones DDP fills as "
               "the backward makes gradients ready",
       names=[r"(model|forward|definition|declaration|registration|parameters\(\)|original) order",
              r"in reverse[^.?]{0,40}(not|instead|rather)", r"(not|never|without|instead of|forgot\w*)[^.?]{0,20}(in )?revers",
              r"(last|output) (layer|parameter)s?[^.?]{0,20}first",
              r"order[^.?]{0,30}gradients? (become|are|get) ready"])
def bucketed_forward_order(model, bucket_cap):
    world_size = dist.get_world_size()

    def flush(bucket):
        flat = torch.cat([p.grad.flatten() for p in bucket])
        dist.all_reduce(flat)
        flat /= world_size
        for p, piece in zip(bucket, flat.split([p.numel() for p in bucket])):
            p.grad.copy_(piece.view_as(p.grad))

    bucket, size = [], 0
    for parameter in model.parameters():
        if parameter.grad is None:
            continue
        bucket.append(parameter)
        size += parameter.numel()
        if size >= bucket_cap:
            flush(bucket)
            bucket, size = [], 0
    if bucket:
        flush(bucket)


@wrong("10.4", "the running size is not reset after a flush: once the first bucket is sent, every later parameter "
               "goes out alone, one all-reduce per tensor",
       names=[r"(reset|zero|restart)\w*[^.?]{0,40}(size|count|total|number of elements)",
              r"(size|count|total|number of elements)[^.?]{0,40}(never|not|isn't|is not) (reset|zeroed|restarted|set back)",
              r"one (parameter|tensor|gradient) (per|in each|in every) (bucket|all[- ]?reduce)",
              r"(every|each) (later |subsequent |following )?(parameter|tensor|gradient)[^.?]{0,40}(own|alone|separate)",
              r"(too many|more) (all[- ]?reduces?|buckets|calls|messages)"])
def bucketed_size_not_reset(model, bucket_cap):
    world_size = dist.get_world_size()

    def flush(bucket):
        flat = torch.cat([p.grad.flatten() for p in bucket])
        dist.all_reduce(flat)
        flat /= world_size
        for p, piece in zip(bucket, flat.split([p.numel() for p in bucket])):
            p.grad.copy_(piece.view_as(p.grad))

    bucket, size = [], 0
    for parameter in reversed([p for p in model.parameters() if p.grad is not None]):
        bucket.append(parameter)
        size += parameter.numel()
        if size >= bucket_cap:
            flush(bucket)
            bucket = []
    if bucket:
        flush(bucket)


@wrong("10.4", "each bucket all-reduced and copied back but never divided by the world size: gradients summed, "
               "not averaged",
       names=SUM_NOT_MEAN)
def bucketed_sum_only(model, bucket_cap):
    def flush(bucket):
        flat = torch.cat([p.grad.flatten() for p in bucket])
        dist.all_reduce(flat)
        for p, piece in zip(bucket, flat.split([p.numel() for p in bucket])):
            p.grad.copy_(piece.view_as(p.grad))

    bucket, size = [], 0
    for parameter in reversed([p for p in model.parameters() if p.grad is not None]):
        bucket.append(parameter)
        size += parameter.numel()
        if size >= bucket_cap:
            flush(bucket)
            bucket, size = [], 0
    if bucket:
        flush(bucket)


# ----- Exercise 10.5: a GPipe step by hand (eqs. (10.5), (10.6)) ------------------------------------------------

@wrong("10.5", "each micro-batch loss back-propagated unscaled (no 1/m of eq. (10.6)): the accumulated gradients are "
               "m times the batch's",
       names=[r"(forgot|missing|not|never|without|unscaled)[^.?]{0,40}(1\s*/\s*m\b|1\s*/\s*n_micro|scal|divid)",
              r"(scal|divid)\w*[^.?]{0,40}(by )?(1\s*/\s*)?(n_micro|\bm\b|the number of micro-?batches)[^.?]{0,30}(before|each|every|missing|not)",
              r"(\bm\b|n_micro|number of micro-?batches)\s*(×|times|x)\s*(too|the|larger|bigger)",
              r"(sum|accumulat)\w*[^.?]{0,30}(micro-?batch )?(losses|gradients)[^.?]{0,30}(not|instead of|rather than) (their )?(mean|average)"])
def gpipe_unscaled_losses(stage, batch, n_micro, hidden, loss_fn):
    rank = dist.get_rank()
    micro_batches = batch.chunk(n_micro)
    if rank == 0:
        outputs = []
        for x in micro_batches:
            out = stage(x)
            dist.send(out.detach(), dst=1)
            outputs.append(out)
        for out in outputs:
            grad = torch.empty_like(out)
            dist.recv(grad, src=1)
            out.backward(grad)
        return None
    received, losses = [], []
    for targets in micro_batches:
        x = torch.empty(len(targets), hidden)
        dist.recv(x, src=0)
        x.requires_grad_()
        received.append(x)
        losses.append(loss_fn(stage(x), targets))
    for x, loss in zip(received, losses):
        loss.backward()
        dist.send(x.grad, dst=0)
    return sum(loss.item() for loss in losses) / n_micro


@wrong("10.5", "rank 1 returns the sum of the m micro-batch losses, not their mean: the batch's loss m times too "
               "large (the gradients are right)",
       names=[r"(return\w*|loss)[^.?]{0,50}(sum|total)[^.?]{0,30}(not|instead|rather)[^.?]{0,20}(mean|average)",
              r"(sum|total) of[^.?]{0,30}loss\w*[^.?]{0,30}(not|instead|rather)",
              r"loss[^.?]{0,60}(\bm\b|n_micro|number of micro-?batches)\s*(×|times|x)",
              r"(mean|average)[^.?]{0,30}(micro-?batch )?loss\w*[^.?]{0,40}(not|instead|rather|divid)",
              r"(divid\w*|/)\s*(by )?(\bm\b|n_micro)[^.?]{0,30}(return|loss)"])
def gpipe_returns_loss_sum(stage, batch, n_micro, hidden, loss_fn):
    rank = dist.get_rank()
    micro_batches = batch.chunk(n_micro)
    if rank == 0:
        outputs = []
        for x in micro_batches:
            out = stage(x)
            dist.send(out.detach(), dst=1)
            outputs.append(out)
        for out in outputs:
            grad = torch.empty_like(out)
            dist.recv(grad, src=1)
            out.backward(grad)
        return None
    received, losses = [], []
    for targets in micro_batches:
        x = torch.empty(len(targets), hidden)
        dist.recv(x, src=0)
        x.requires_grad_()
        received.append(x)
        losses.append(loss_fn(stage(x), targets))
    for x, loss in zip(received, losses):
        (loss / n_micro).backward()
        dist.send(x.grad, dst=0)
    return sum(loss.item() for loss in losses)


@wrong("10.5", "rank 1 never calls requires_grad_() on the received activation: x.grad is None after the backward, "
               "so there is no gradient to send back to rank 0",
       names=[r"requires_grad", r"\bleaf\b",
              r"(\bx\b|activation|received|input)\w*[^.?]{0,40}\.grad[^.?]{0,30}None",
              r"(no|never|without|doesn't|does not)[^.?]{0,20}(track|require|need)\w*[^.?]{0,10}grad",
              r"(no|never a) grad(ient)?[^.?]{0,40}(received|activation|input)"])
def gpipe_no_requires_grad(stage, batch, n_micro, hidden, loss_fn):
    rank = dist.get_rank()
    micro_batches = batch.chunk(n_micro)
    if rank == 0:
        outputs = []
        for x in micro_batches:
            out = stage(x)
            dist.send(out.detach(), dst=1)
            outputs.append(out)
        for out in outputs:
            grad = torch.empty_like(out)
            dist.recv(grad, src=1)
            out.backward(grad)
        return None
    received, losses = [], []
    for targets in micro_batches:
        x = torch.empty(len(targets), hidden)
        dist.recv(x, src=0)
        received.append(x)
        losses.append(loss_fn(stage(x), targets))
    for x, loss in zip(received, losses):
        (loss / n_micro).backward()
        dist.send(x.grad, dst=0)
    return sum(loss.item() for loss in losses) / n_micro


@wrong("10.5", "rank 0 runs its backward wave over the outputs in reverse (\"backward goes backwards\") while rank 1 "
               "sends the gradients in forward order: micro-batch j's output gets micro-batch m − 1 − j's gradient",
       names=[r"(gradients?|grads?)[^.?]{0,60}(revers\w*|wrong|opposite|another|different|mismatched) (order|micro-?batch)",
              r"(revers\w*|opposite)[^.?]{0,40}(order|micro-?batch)",
              r"(mismatch|pair|match)\w*[^.?]{0,40}(micro-?batch|outputs?)[^.?]{0,30}(gradient|grad|wrong|another)",
              r"(wrong|another|different|other) micro-?batch"])
def gpipe_rank0_backward_reversed(stage, batch, n_micro, hidden, loss_fn):
    rank = dist.get_rank()
    micro_batches = batch.chunk(n_micro)
    if rank == 0:
        outputs = []
        for x in micro_batches:
            out = stage(x)
            dist.send(out.detach(), dst=1)
            outputs.append(out)
        for out in reversed(outputs):
            grad = torch.empty_like(out)
            dist.recv(grad, src=1)
            out.backward(grad)
        return None
    received, losses = [], []
    for targets in micro_batches:
        x = torch.empty(len(targets), hidden)
        dist.recv(x, src=0)
        x.requires_grad_()
        received.append(x)
        losses.append(loss_fn(stage(x), targets))
    for x, loss in zip(received, losses):
        (loss / n_micro).backward()
        dist.send(x.grad, dst=0)
    return sum(loss.item() for loss in losses) / n_micro


# ----- Exercise 10.6: FSDP's collectives by hand (eq. (10.7)) ---------------------------------------------------

@wrong("10.6", "all_gather_parameter returns the gathered tensor with its padding: ⌈rows/N⌉·N rows, zero rows "
               "where the last shards were short",
       names=[r"pad\w*[^.?]{0,40}(not|never|isn't|is not|wasn't) (removed|trimmed|dropped|stripped|cut)",
              r"(remove|trim|drop|strip|cut)\w*[^.?]{0,30}(the )?(pad|zero rows|extra rows)",
              r"(too many|extra|additional|zero) rows", r"(\d+|⌈[^⌉]*⌉\s*[·*×]\s*N) rows[^.?]{0,30}(instead of|not|rather than) (\d+|rows)"],
       arguments=with_reference_reduce_scatter)
def all_gather_keeps_padding(shard, rows):
    world_size = dist.get_world_size()
    per_rank = math.ceil(rows / world_size)
    padded = torch.zeros(per_rank, *shard.shape[1:], dtype=shard.dtype)
    padded[:len(shard)] = shard
    full = torch.empty(per_rank * world_size, *shard.shape[1:], dtype=shard.dtype)
    dist.all_gather_into_tensor(full, padded)
    return full


@wrong("10.6", "all_gather_parameter trims each piece to an even split (the first rows mod N ranks get one more "
               "row, as np.array_split), not torch.chunk's ⌈rows/N⌉ per shard: rows lost or zeros kept",
       names=[r"(unlike|not as|not how|differ\w* from|instead of|rather than|not)\s*`?torch\.chunk",
              r"torch\.chunk[^.?]{0,50}(gives|puts|makes|assigns)[^.?]{0,40}(⌈|ceil|first|full|fewer)",
              r"(array_split|tensor_split|even(ly)? split|balanced split)",
              r"(shard|piece|chunk) (sizes|lengths)[^.?]{0,50}(wrong|differ|do not match|don't match|not torch)",
              r"\(2, ?2, ?0\)|\[2, ?2, ?0\]|\(3, ?3, ?1\)|\[3, ?3, ?1\]"],
       arguments=with_reference_reduce_scatter)
def all_gather_even_split_lengths(shard, rows):
    world_size = dist.get_world_size()
    per_rank = math.ceil(rows / world_size)
    padded = torch.zeros(per_rank, *shard.shape[1:], dtype=shard.dtype)
    padded[:len(shard)] = shard
    full = torch.empty(per_rank * world_size, *shard.shape[1:], dtype=shard.dtype)
    dist.all_gather_into_tensor(full, padded)
    pieces = full.split(per_rank)
    real = [rows // world_size + (1 if r < rows % world_size else 0) for r in range(world_size)]
    return torch.cat([piece[:n] for piece, n in zip(pieces, real)])


@wrong("10.6", "reduce_scatter_gradient returns the reduce-scattered sum without dividing by N: the shard of the "
               "summed gradient, not of the average",
       names=SUM_NOT_MEAN, arguments=with_reference_all_gather, learner_name="reduce_scatter_gradient")
def reduce_scatter_sum_only(full_grad):
    world_size, rank = dist.get_world_size(), dist.get_rank()
    rows = len(full_grad)
    per_rank = math.ceil(rows / world_size)
    chunks = list(full_grad.chunk(world_size))
    chunks += [full_grad[:0]] * (world_size - len(chunks))
    padded = torch.cat([F.pad(c, (0, 0) * (c.dim() - 1) + (0, per_rank - len(c))) for c in chunks])
    mine = torch.empty(per_rank, *full_grad.shape[1:], dtype=full_grad.dtype)
    dist.reduce_scatter_tensor(mine, padded)
    return mine[:len(chunks[rank])]


@wrong("10.6", "reduce_scatter_gradient returns the padded block of ⌈rows/N⌉ rows: a rank whose torch.chunk shard is "
               "shorter (or empty) gets zero padding rows with its gradient",
       names=[r"pad\w*[^.?]{0,40}(not|never|isn't|is not|wasn't) (removed|trimmed|dropped|stripped|cut)",
              r"(remove|trim|drop|strip|cut)\w*[^.?]{0,30}(the )?(pad|zero rows|extra rows)",
              r"(too many|extra|additional|zero) rows",
              r"(last|final|shorter|empty) (rank|shard)s?[^.?]{0,50}(rows|shorter|padding|zeros|empty)"],
       arguments=with_reference_all_gather, learner_name="reduce_scatter_gradient")
def reduce_scatter_keeps_padding(full_grad):
    world_size = dist.get_world_size()
    rows = len(full_grad)
    per_rank = math.ceil(rows / world_size)
    padded = F.pad(full_grad, (0, 0) * (full_grad.dim() - 1) + (0, per_rank * world_size - rows))
    mine = torch.empty(per_rank, *full_grad.shape[1:], dtype=full_grad.dtype)
    dist.reduce_scatter_tensor(mine, padded)
    return mine / world_size
