"""Seventh blind held-out set for Chapter 04 (CLIP): wrong answers written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages: only the student notebook (its prompts, stubs
and check calls) and the reference solution were read. It aims at the mistakes learners most often make in this
chapter: the logit scale of eq. (4.1) used as θ instead of e^θ, as a temperature, or detached from the graph, and
rows normalised along the wrong axis; the symmetric loss of eq. (4.2) summed, taken one way only, with MoCo's
labels, or on probabilities softmaxed twice; the factors and the axes of the gradient of eqs. (4.3), (4.4);
the causal mask, the [EOT] position (OpenAI's ``argmax`` of the token ids) and the final LayerNorm of the text
encoder; θ stored as s, or not as a parameter; the two normalisations of eq. (4.9); and the axis, the order and
the broadcasting of recall@k (eq. (4.10)). The helpers a learner's cell uses from earlier cells (``clip_logits`` in
``DualEncoder.forward``) and the given ``TextEncoder.__init__`` are the chapter's reference solutions, so each
answer holds exactly one mistake.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("04_clip")
clip_logits = REF["clip_logits"]
GivenTextEncoder = REF["TextEncoder"]  # its __init__ is given in the exercise cell; the answers below write forward

REGISTRY = Registry("04", {
    "4.1": ("check_clip_logits", "clip_logits"),
    "4.2": ("check_clip_loss", "clip_loss"),
    "4.3": ("check_clip_loss_gradients", "clip_loss_gradients"),
    "4.4": ("check_text_encoder", "TextEncoder"),
    "4.5": ("check_dual_encoder", "DualEncoder"),
    "4.6": ("check_class_embeddings", "class_embeddings"),
    "4.7": ("check_recall_at_k", "recall_at_k"),
})
wrong = REGISTRY.wrong


# ----- Exercise 4.1: the similarity logits ------------------------------------------------------------------------

@wrong("4.1", "scale = logit_scale.clamp(max=100): θ used as the scale itself, never exponentiated (s = e^θ)",
       names=[r"e\^\{?θ", r"\bexp\w*[^.?]{0,30}(θ|theta|logit.?scale|missing|forgot|not)|(θ|theta|logit.?scale)[^.?]{0,30}\bexp", r"logarithm", r"(θ|theta|logit_scale)[^.?]{0,40}(log|not the scale|itself|directly|instead of)",
              r"(s|scale)\s*=\s*θ"])
def logits_theta_not_exponentiated(image_features, text_features, logit_scale):
    u = image_features / image_features.norm(dim=-1, keepdim=True)
    v = text_features / text_features.norm(dim=-1, keepdim=True)
    scale = logit_scale.clamp(max=100)
    return scale * u @ v.T


@wrong("4.1", "features normalised with norm(dim=0): each column (feature) made unit, not each row (embedding)",
       names=[r"dim\s*=\s*0", r"dim\s*=\s*(-1|1)", r"(each|every|per)[- ]row[^.?]{0,30}(normali[sz]|unit|norm)", r"(column|feature)s?[^.?]{0,30}(instead of|not|rather than)[^.?]{0,20}row",
              r"(normali[sz]\w*|norm)[^.?]{0,40}(wrong|other|batch) (axis|dim)|(batch|wrong) (axis|dim)[^.?]{0,30}normali[sz]", r"(u|v|embeddings?|rows?)[^.?]{0,30}(not )?unit[- ](length|norm)"])
def logits_normalised_over_batch(image_features, text_features, logit_scale):
    u = image_features / image_features.norm(dim=0, keepdim=True)
    v = text_features / text_features.norm(dim=0, keepdim=True)
    scale = logit_scale.exp().clamp(max=100)
    return scale * u @ v.T


@wrong("4.1", "cosines divided by s (s read as the temperature τ) instead of multiplied: S = u vᵀ / s",
       names=[r"divid\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,20}multipl", r"multipl\w*[^.?]{0,30}(not|instead of) divid",
              r"1\s*/\s*τ", r"inverse temperature", r"(temperature|τ)[^.?]{0,40}(not|instead|rather|invert\w*|reciprocal)",
              r"reciprocal"])
def logits_divided_by_scale(image_features, text_features, logit_scale):
    u = F.normalize(image_features, dim=-1)
    v = F.normalize(text_features, dim=-1)
    temperature = logit_scale.exp().clamp(max=100)
    return u @ v.T / temperature


@wrong("4.1", "scale = min(logit_scale.exp().item(), 100): a Python float, so S carries no gradient to θ",
       names=[r"\.item\(\)", r"(gradient|grad|differentiab\w*)[^.?]{0,40}(θ|theta|logit_scale|scale)",
              r"(θ|theta|logit_scale|scale)[^.?]{0,40}(no|zero|none|not)[^.?]{0,15}(grad|differentiab)",
              r"detach\w*", r"python (float|number|min)", r"(graph|autograd)[^.?]{0,30}(broken|cut|lost|detach)"])
def logits_scale_item(image_features, text_features, logit_scale):
    u = F.normalize(image_features, dim=-1)
    v = F.normalize(text_features, dim=-1)
    scale = min(logit_scale.exp().item(), 100.0)
    return scale * u @ v.T


# ----- Exercise 4.2: the symmetric loss ---------------------------------------------------------------------------

@wrong("4.2", "the two cross-entropies added, not averaged: L_I→T + L_T→I, twice eq. (4.2)",
       names=[r"averag\w*[^.?]{0,30}(two|both) (directions|losses|cross)|(sum|add)\w*[^.?]{0,20}instead[^.?]{0,20}(averag|mean)", r"\b(½|1/2|one half)\b", r"(divid\w*|/)\s*(by )?2\b[^.?]{0,30}(loss|direction|sum|average)", r"twice[^.?]{0,30}(loss|average|mean)|(sum|add)\w*[^.?]{0,30}(two|both) directions", r"(factor|off by)[^.?]{0,10}(of )?(2|two)\b",
              r"(sum|add)\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,10}(mean|averag)"])
def loss_summed(logits):
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


@wrong("4.2", "only the image→text direction: the rows' cross-entropy, the columns' (logits.T) never taken",
       names=[r"symmetr\w*", r"column", r"T\s*→\s*I|text[- ]?to[- ]?image|texts? → images?", r"logits\.T|S\^?⊤|Sᵀ|transpos\w* (logits|similarit)",
              r"(one|a single) direction", r"both directions"])
def loss_one_direction(logits):
    labels = torch.arange(len(logits), device=logits.device)
    return F.cross_entropy(logits, labels)


@wrong("4.2", "labels = zeros (MoCo's positive-in-column-0 convention): the right pair of row i is taken as column 0, "
              "not the diagonal",
       names=[r"diagonal", r"arange", r"label\w*[^.?]{0,30}(0|zero|first column)", r"(column|text|image) i\b",
              r"\bpair i\b", r"(right|positive|correct) (pair|text|match)[^.?]{0,30}(diagonal|i\b)"])
def loss_zero_labels(logits):
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


@wrong("4.2", "softmax applied before F.cross_entropy, which takes a log-softmax itself: the loss of the "
              "probabilities P, not of the logits S",
       names=[r"(raw|unnormali[sz]ed) logits", r"(softmax|normali[sz]\w*) (applied )?twice|double softmax",
              r"cross_entropy[^.?]{0,50}(log[- ]?softmax|logits)", r"(already|itself)[^.?]{0,30}(log[- ]?softmax|softmax)",
              r"probabilit\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,10}logits"])
def loss_softmax_first(logits):
    labels = torch.arange(logits.shape[0], device=logits.device)
    rows = F.cross_entropy(logits.softmax(dim=1), labels)
    cols = F.cross_entropy(logits.T.softmax(dim=1), labels)
    return (rows + cols) / 2


# ----- Exercise 4.3: the gradient by hand -------------------------------------------------------------------------

@wrong("4.3", "the factor s of ∂S/∂u = s·v left out: G = dL/dS of eq. (4.3), not s · dL/dS",
       names=[r"(factor|multipl\w*)[^.?]{0,20}(of |by )?(the )?(\bs\b|logit scale)[^.?(]{0,30}(missing|forgot|left out|dropped)", r"chain rule",
              r"(s|scale)\s*/\s*\(?2\s*B", r"\bs\s*·?\s*v_j\b", r"(missing|forgot\w*|without|dropped)[^.?]{0,30}(factor s\b|scale s\b|logit scale)",
              r"\b(logit scale|scale s|factor s|s)\b[^.?]{0,20}(missing|forgot\w*|left out|dropped)"])
def gradients_without_scale(u, v, scale):
    B = u.shape[0]
    S = scale * u @ v.T
    P, Q = S.softmax(dim=1), S.softmax(dim=0)
    G = (P + Q - 2 * torch.eye(B, dtype=u.dtype, device=u.device)) / (2 * B)
    return G @ v, G.T @ u


@wrong("4.3", "Q = S.softmax(dim=1), copied from P: the column softmax (each text over images) is a row softmax",
       names=[r"\bQ\b[^.?]{0,40}(column|dim\s*=\s*0)", r"dim\s*=\s*0", r"softmax[^.?]{0,30}(column|over (the )?images)",
              r"(column|each text)[^.?]{0,30}softmax", r"P\s*=\s*Q|Q\s*=\s*P|twice the row"])
def gradients_q_over_rows(u, v, scale):
    B = u.shape[0]
    S = scale * u @ v.T
    P = S.softmax(dim=1)
    Q = S.softmax(dim=1)
    G = scale / (2 * B) * (P + Q - 2 * torch.eye(B, dtype=u.dtype, device=u.device))
    return G @ v, G.T @ u


@wrong("4.3", "grad_v = G @ u: text j's gradient mixed with row j of G instead of column j (Gᵀ U)",
       names=[r"G\s*(\^\s*⊤|ᵀ|\^T|\.T)", r"transpos\w*[^.?]{0,30}(\bG\b|gradient matrix|grad_v)|Gᵀ|G\.T|G\^?⊤", r"column j", r"G\s*\.T\s*@\s*u",
              r"(grad_v|dL/dv|∂L/∂v)[^.?]{0,40}(column|transpos)"])
def gradients_v_not_transposed(u, v, scale):
    B = u.shape[0]
    S = scale * u @ v.T
    P, Q = S.softmax(dim=1), S.softmax(dim=0)
    G = scale / (2 * B) * (P + Q - 2 * torch.eye(B, dtype=u.dtype, device=u.device))
    return G @ v, G @ u


@wrong("4.3", "P + Q − I: the one-hot labels subtracted once, not once per direction (2δ_ij)",
       names=[r"2\s*·?\s*δ", r"2\s*\*?\s*(torch\.eye|I\b|eye)", r"(once|one) (for|per) (each|both) direction",
              r"(twice|two times)[^.?]{0,30}(identity|eye|δ|one-hot|label)", r"(identity|eye|δ|one-hot|label)\w*[^.?]{0,30}(twice|once per|both direction)"])
def gradients_identity_once(u, v, scale):
    B = u.shape[0]
    S = scale * u @ v.T
    P, Q = S.softmax(dim=1), S.softmax(dim=0)
    G = scale / (2 * B) * (P + Q - torch.eye(B, dtype=u.dtype, device=u.device))
    return G @ v, G.T @ u


# ----- Exercise 4.4: TextEncoder.forward --------------------------------------------------------------------------

@wrong("4.4", "no causal mask: the blocks called as block(x), so every position (the [EOT] one too) attends to the "
              "padding after it",
       names=[r"causal (mask|attention)[^.?]{0,30}(missing|forgot|absent|not|without)|(missing|forgot\w*|without|no) (the )?causal", r"src_mask|generate_square_subsequent_mask", r"(attend|see|look)\w*[^.?]{0,30}(future|later|after|padding|ahead)",
              r"(no|without|missing|forgot\w*)[^.?]{0,10}mask", r"bidirectional"])
class TextEncoderNoMask(GivenTextEncoder):
    def forward(self, tokens):
        B, T = tokens.shape
        x = self.token_embedding(tokens) + self.position_embedding[:T]
        for block in self.blocks:
            x = block(x)
        x = self.final_norm(x)
        eot = (tokens == self.EOT).int().argmax(dim=-1)
        return self.projection(x[torch.arange(B), eot])


@wrong("4.4", "features read at the last position x[:, -1] (padding for any caption shorter than T), not at [EOT]",
       names=[r"\[?EOT\]?", r"end[- ]of[- ]text", r"last (position|token)", r"x\[:,\s*-1\]", r"padding",
              r"(each|every) (row|caption)'?s? (own )?(end|eot)"])
class TextEncoderLastPosition(GivenTextEncoder):
    def forward(self, tokens):
        T = tokens.shape[1]
        x = self.token_embedding(tokens) + self.position_embedding[:T]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        x = self.final_norm(x)
        return self.projection(x[:, -1])


@wrong("4.4", "eot = tokens.argmax(dim=-1), OpenAI's trick: it finds [EOT] only where EOT has the largest id; here "
              "EOT == 2, so it picks the word with the largest id",
       names=[r"tokens\s*==\s*(self\.)?EOT", r"(largest|highest|max\w*) (token )?id", r"argmax[^.?]{0,40}(token|id)",
              r"EOT\s*(==|=|is)\s*2", r"(position|index) of (the )?\[?EOT"])
class TextEncoderArgmaxTokens(GivenTextEncoder):
    def forward(self, tokens):
        B, T = tokens.shape
        x = self.token_embedding(tokens) + self.position_embedding[:T]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        x = self.final_norm(x)
        return self.projection(x[torch.arange(B), tokens.argmax(dim=-1)])


@wrong("4.4", "the final LayerNorm never applied: the [EOT] features projected straight from the last pre-norm block",
       names=[r"final_norm", r"final (layer ?)?norm", r"LayerNorm", r"ln_final",
              r"(norm|normali[sz]ation)[^.?]{0,30}(missing|forgot\w*|skipped|never|not applied)"])
class TextEncoderNoFinalNorm(GivenTextEncoder):
    def forward(self, tokens):
        B, T = tokens.shape
        x = self.token_embedding(tokens) + self.position_embedding[:T]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        eot = (tokens == self.EOT).int().argmax(dim=-1)
        return self.projection(x[torch.arange(B), eot])


# ----- Exercise 4.5: the dual encoder and its logit scale ---------------------------------------------------------

@wrong("4.5", "logit_scale initialised at 1/temperature (s ≈ 14.3) instead of θ = log(1/τ): then s = e^14.3, clamped "
              "to 100",
       names=[r"log\s*\(\s*1\s*/\s*(τ|temperature|0\.07)", r"logarithm", r"θ[^.?]{0,30}(not|instead of|rather than) (s|the scale)",
              r"(stores?|holds?|initiali[sz]\w*)[^.?]{0,30}(s|the scale|14\.3)[^.?]{0,20}(not|instead)",
              r"2\.6[0-9]*", r"e\^\{?θ"])
class DualEncoderScaleNotLog(nn.Module):
    def __init__(self, image_encoder, text_encoder, temperature=0.07):
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.logit_scale = nn.Parameter(torch.tensor(1 / temperature))

    def encode_image(self, images):
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, tokens):
        return F.normalize(self.text_encoder(tokens), dim=-1)

    def forward(self, images, tokens):
        return clip_logits(self.image_encoder(images), self.text_encoder(tokens), self.logit_scale)


@wrong("4.5", "logit_scale a plain tensor, not an nn.Parameter: not in model.parameters(), so the optimiser never "
              "learns the temperature",
       names=[r"nn\.Parameter", r"\bparameters\(\)", r"requires_grad", r"(learn\w*|train\w*|optimi[sz]\w*)[^.?]{0,40}(θ|logit_scale|temperature|scale)",
              r"(not|never) (a )?(learn\w*|register\w*|paramet\w*)"])
class DualEncoderScaleNotParameter(nn.Module):
    def __init__(self, image_encoder, text_encoder, temperature=0.07):
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.logit_scale = torch.tensor(math.log(1 / temperature))

    def encode_image(self, images):
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, tokens):
        return F.normalize(self.text_encoder(tokens), dim=-1)

    def forward(self, images, tokens):
        return clip_logits(self.image_encoder(images), self.text_encoder(tokens), self.logit_scale)


@wrong("4.5", "encode_text returns the raw projection: the text embeddings v are not normalised to unit length",
       names=[r"encode_text[^.?]{0,50}(normali[sz]\w*|unit)", r"(text|v\b)[^.?]{0,30}(not|never|un)[- ]?(normali[sz]\w*|unit)",
              r"F\.normalize", r"unit[- ](length|norm|rows?)", r"‖\s*v\s*‖|norm of v"])
class DualEncoderTextNotNormalised(nn.Module):
    def __init__(self, image_encoder, text_encoder, temperature=0.07):
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    def encode_image(self, images):
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, tokens):
        return self.text_encoder(tokens)

    def forward(self, images, tokens):
        return clip_logits(self.image_encoder(images), self.text_encoder(tokens), self.logit_scale)


# ----- Exercise 4.6: class embeddings from an ensemble of prompts -------------------------------------------------

@wrong("4.6", "the raw prompt embeddings averaged, not normalised first: templates with long vectors outvote the rest",
       names=[r"(normali[sz]\w*)[^.?]{0,40}(before|each prompt|each template|first)",
              r"(same|equal) (vote|weight)", r"(each|every) (prompt|template)[^.?]{0,40}(normali[sz]\w*|unit)",
              r"g\(t_k\(c\)\)\s*/\s*‖", r"(long|larger?) (norm|vector)s?[^.?]{0,30}(outvote|dominat|weigh)"])
def class_embeddings_raw_mean(encode_text, class_names, templates):
    rows = []
    for name in class_names:
        embedded = encode_text([template.format(name) for template in templates])
        rows.append(F.normalize(embedded.mean(dim=0), dim=-1))
    return torch.stack(rows)


@wrong("4.6", "the mean of the normalised prompt embeddings returned as is: w̄_c, never renormalised onto the sphere",
       names=[r"renormali[sz]\w*", r"(back )?on(to)? the (unit )?sphere", r"w̄_c",
              r"(mean|average)[^.?]{0,40}(not|never|isn't)[^.?]{0,10}(unit|normali[sz]\w*)",
              r"(normali[sz]\w*)[^.?]{0,30}(again|after|the mean|second)", r"shorter than (1|one|unit)"])
def class_embeddings_not_renormalised(encode_text, class_names, templates):
    rows = []
    for name in class_names:
        embedded = F.normalize(encode_text([template.format(name) for template in templates]), dim=-1)
        rows.append(embedded.mean(dim=0))
    return torch.stack(rows)


@wrong("4.6", "the (K, D) prompt embeddings normalised with dim=0 (over the templates), not each row over D",
       names=[r"dim\s*=\s*0", r"dim\s*=\s*(-1|1)", r"(each|every|per)[- ](prompt|template)[^.?]{0,30}(normali[sz]|unit|norm)",
              r"(templates?)[^.?]{0,40}(wrong|other) (axis|dim)|(wrong|other) (axis|dim)[^.?]{0,40}templates?", r"(over|across|along) (the )?templates[^.?]{0,30}(instead|not|rather)"])
def class_embeddings_normalised_over_templates(encode_text, class_names, templates):
    rows = []
    for name in class_names:
        embedded = F.normalize(encode_text([template.format(name) for template in templates]), dim=0)
        rows.append(F.normalize(embedded.mean(dim=0), dim=0))
    return torch.stack(rows)


# ----- Exercise 4.7: recall@k -------------------------------------------------------------------------------------

@wrong("4.7", "topk along dim=0: each column's k best rows, the other retrieval direction (Sᵀ), not each row's",
       names=[r"dim\s*=\s*0", r"dim\s*=\s*(1|-1)", r"(queries|query)[^.?]{0,30}(rows?|columns?)",
              r"(column|transpos\w*)[^.?]{0,30}(instead|not|rather)", r"(other|wrong|opposite) direction",
              r"(each|every|per) row[^.?]{0,40}(not|instead|rather|column)"])
def recall_topk_over_columns(similarity, k):
    B = similarity.shape[0]
    top = similarity.topk(k, dim=0).indices  # (k, B)
    return (top == torch.arange(B)[None, :]).any(dim=0).float().mean().item()


@wrong("4.7", "argsort(dim=1)[:, :k]: argsort is ascending, so the k LEAST similar columns are taken",
       names=[r"ascending", r"descending", r"(k )?(smallest|least similar|lowest)", r"argsort[^.?]{0,40}(order|revers\w*|flip)",
              r"(largest|highest|most similar)[^.?]{0,30}(instead|not|rather)"])
def recall_argsort_ascending(similarity, k):
    B = similarity.shape[0]
    ranked = similarity.argsort(dim=1)[:, :k]
    return (ranked == torch.arange(B)[:, None]).any(dim=1).float().mean().item()


@wrong("4.7", "rank from similarity > similarity.diagonal() without [:, None]: S_ij compared with S_jj (each "
              "column's own score), not with row i's S_ii",
       names=[r"\[\s*:\s*,\s*None\s*\]", r"unsqueeze", r"broadcast\w*[^.?]{0,40}(diagonal|column|S_jj|\[:, ?None\])", r"S_jj|S_\{?jj\}?", r"keepdim[^.?]{0,30}diagonal|diagonal[^.?]{0,30}keepdim",
              r"(column|transpos\w*)[^.?]{0,30}(instead|not|rather)[^.?]{0,20}row", r"(row i'?s|its own row'?s?) (own |right )?(score|S_ii)"])
def recall_rank_broadcast(similarity, k):
    rank = 1 + (similarity > similarity.diagonal()).sum(dim=1)
    return (rank <= k).float().mean().item()
