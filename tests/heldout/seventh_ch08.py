"""Seventh blind held-out set for Chapter 08 (hybrid video: CNN + transformer + liquid network): wrong answers
written as a learner writes the exercise cell.

Written without reading the checks or seeing any of their messages: only the student notebook (prompts, stubs, check
calls) and the solution notebook were read. It aims at the mistakes learners make most often in this chapter — the
fused solver's step and implicit terms (eq. (8.3)), the CfC gate's sign, heads and inputs (eq. (8.6)), the order of
folding time into the batch, the direction and dtype of the causal mask (eq. (8.8)), and the hybrid's stage order,
gaps and causality. The given parts of a cell (``CfCCell.__init__``, ``Hybrid.__init__``) are the stub's, so each
``forward`` is written on the reference class; the helpers a learner's cell uses from non-exercise cells (the
encoders, decoders, ``TemporalTransformer`` and ``Liquid``) are the solution notebook's, so each answer holds exactly
one mistake.
"""
import jupytext
import torch

from tests.heldout.report import Registry, solution_namespace
from tests.solution_code import SOLUTIONS

REF = solution_namespace("08_hybrid_video")
# The codec and temporal modules that ``Hybrid.__init__`` builds live in two non-exercise cells, several classes each
# (``definitions=`` would keep only each cell's first class), so both cells are run whole into the same namespace;
# ``Liquid`` then finds the reference ``CfCCell`` and ``TemporalTransformer`` the reference ``causal_mask``.
for _source in (c.source for c in jupytext.read(SOLUTIONS / "08_hybrid_video.md").cells if c.cell_type == "code"):
    if _source.startswith(("class ConvEncoder", "class TemporalTransformer")):
        exec(compile(_source, "<08_hybrid_video.md, helpers>", "exec"), REF)  # noqa: S102 - our own notebook
per_frame = REF["per_frame"]
ReferenceCfCCell = REF["CfCCell"]
ReferenceHybrid = REF["Hybrid"]

REGISTRY = Registry("08", {
    "8.1": ("check_ltc_update", "ltc_update"),
    "8.2": ("check_cfc_cell", "CfCCell"),
    "8.3": ("check_per_frame", "per_frame"),
    "8.4": ("check_causal_mask", "causal_mask"),
    "8.5": ("check_hybrid", "Hybrid"),
})
wrong = REGISTRY.wrong


# ----- Exercise 8.1: the fused LTC solver (eq. (8.3)) ----------------------------------------------------------

@wrong("8.1", "step Δ = dt instead of dt / unfolds: L steps of the whole gap, so the state is advanced by L·δt",
       names=[r"Δ\s*=\s*δ\s*t\s*/\s*L", r"dt\s*/\s*unfolds", r"(divid\w*|split\w*)[^.?]{0,30}(by |into )?(L\b|unfolds|the number of (steps|unfolds))",
              r"(advanc\w*|integrat\w*|total)[^.?]{0,30}(L|unfolds)\s*(×|\*|·|times)\s*(δ\s*t|dt|the gap)",
              r"(each|every) (step|unfold)[^.?]{0,30}(whole|full|entire) (gap|δ\s*t|dt)"])
def ltc_update_delta_is_dt(x, f, tau, A, dt, unfolds=6):
    for _ in range(unfolds):
        opening = f(x)
        x = (x + dt * opening * A) / (1 + dt * (1 / tau + opening))
    return x


@wrong("8.1", "f evaluated once at x_0 before the loop: the synapse opening frozen instead of f(x_k) at every step",
       names=[r"f\(x_k", r"(every|each) (step|unfold|iteration)[^.?]{0,40}(f\b|opening|synapse)",
              r"(f\b|opening|synapse)[^.?]{0,40}(every|each) (step|unfold|iteration)",
              r"(froz\w*|frozen|once|fixed|stale)[^.?]{0,30}(f\b|opening|x_0|initial state)",
              r"(re-?evaluat\w*|recomput\w*|update\w*)[^.?]{0,30}(f\b|opening)"])
def ltc_update_f_frozen(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    opening = f(x)
    for _ in range(unfolds):
        x = (x + delta * opening * A) / (1 + delta * (1 / tau + opening))
    return x


@wrong("8.1", "explicit Euler x + Δ·(−(1/τ + f)x + fA) instead of the fused semi-implicit step (no division)",
       names=[r"explicit", r"semi-?implicit", r"implicit(ly)?[^.?]{0,30}(x_\{?k\s*\+\s*1|linear term|leak)",
              r"(divid\w*|denominator)[^.?]{0,40}1\s*\+\s*Δ", r"fused[^.?]{0,30}(not|instead|rather)",
              r"(unstable|blow\w* up|bounded|leaves? \[0, ?A\])"])
def ltc_update_explicit(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        opening = f(x)
        x = x + delta * (-(1 / tau + opening) * x + opening * A)
    return x


@wrong("8.1", "denominator 1 + Δ·f: the leak 1/τ left out of the implicit term",
       names=[r"1\s*/\s*τ[^.?]{0,40}(missing|forgot\w*|dropped|left out|absent|omitted|ignored|unused)",
              r"(missing|forgot\w*|dropped|left out|without|no)[^.?]{0,20}(the )?(leak|1\s*/\s*τ|1\s*/\s*tau)",
              r"\btau\b[^.?]{0,30}(ignored|unused|never|no effect|not used)", r"leak\w*[^.?]{0,30}(term|conductance)",
              r"1\s*\+\s*Δ\s*\(\s*1\s*/\s*τ\s*\+\s*f"])
def ltc_update_no_leak(x, f, tau, A, dt, unfolds=6):
    delta = dt / unfolds
    for _ in range(unfolds):
        opening = f(x)
        x = (x + delta * opening * A) / (1 + delta * opening)
    return x


# ----- Exercise 8.2: a CfC cell (eq. (8.6)) ------------------------------------------------------------------

@wrong("8.2", "gate σ(f·t + b): ncps's sign convention copied, the rate not negated (σ(−f·t + b) in eq. (8.6))",
       names=[r"σ\s*\(\s*[−-]\s*f", r"sigmoid\(\s*-\s*self\.time_a", r"(sign|negat\w*|minus)[^.?]{0,40}(f\b|rate|time_a|t_a)",
              r"(f\b|rate|time_a|t_a)[^.?]{0,40}(sign|negat\w*|minus)[^.?]{0,30}(gate|σ|sigma|flipped)", r"[−-]\s*f\s*\(?z?\)?\s*(·|\*)?\s*t\b",
              r"gate[^.?]{0,40}(ris\w*|grow\w*|increas\w*)[^.?]{0,20}(with )?(t\b|time)"])
class CfCCellGateSign(ReferenceCfCCell):
    def forward(self, input, hx, ts):
        z = self.backbone(torch.cat([input, hx], dim=1))
        h, g = torch.tanh(self.ff1(z)), torch.tanh(self.ff2(z))
        gate = torch.sigmoid(self.time_a(z) * ts + self.time_b(z))
        return gate * g + (1 - gate) * h


@wrong("8.2", "g and h swapped: the gate weights h (ff1, the state as t → ∞) and 1 − gate weights g (ff2)",
       names=[r"\bswap\w*[^.?]{0,30}(g\b|h\b|heads?|liquid|transformer|order)", r"(ff1|ff2|\bg\b|\bh\b)[^.?]{0,40}(exchang\w*|interchang\w*|wrong way|the other way|reversed)",
              r"gate[^.?]{0,30}(weight\w*|multipl\w*)[^.?]{0,20}(g\b|ff2|the state at t\s*=\s*0)",
              r"1\s*[−-]\s*(gate|σ)[^.?]{0,40}(h\b|ff1|t\s*→\s*∞)", r"(g|h) and (h|g)\b[^.?]{0,20}(swap|revers|exchang)"])
class CfCCellHeadsSwapped(ReferenceCfCCell):
    def forward(self, input, hx, ts):
        z = self.backbone(torch.cat([input, hx], dim=1))
        h, g = torch.tanh(self.ff1(z)), torch.tanh(self.ff2(z))
        gate = torch.sigmoid(-self.time_a(z) * ts + self.time_b(z))
        return gate * h + (1 - gate) * g


@wrong("8.2", "ts never used: gate σ(−f + b), the same for every gap, instead of σ(−f·t + b)",
       names=[r"\bts\b[^.?]{0,40}(ignored|unused|never|not used|no effect|missing)",
              r"(gap|elapsed time|time since)[^.?]{0,40}(ignored|unused|no effect|not used|does not change|doesn't change)",
              r"(multipl\w*|scal\w*)[^.?]{0,30}(by )?(ts\b|the (time|gap))[^.?]{0,30}(missing|never|not|ignored|unused)", r"f\s*(·|\*)\s*t\b[^.?]{0,30}(missing|forgot\w*)",
              r"(same|identical|independent)[^.?]{0,30}(every|each|of the|any) (gap|ts|time)"])
class CfCCellIgnoresTs(ReferenceCfCCell):
    def forward(self, input, hx, ts):
        z = self.backbone(torch.cat([input, hx], dim=1))
        h, g = torch.tanh(self.ff1(z)), torch.tanh(self.ff2(z))
        gate = torch.sigmoid(-self.time_a(z) + self.time_b(z))
        return gate * g + (1 - gate) * h


@wrong("8.2", "backbone input concatenated as [hx, input] instead of [input, hx] (W[u; x]): the weights read the "
              "wrong halves",
       names=[r"\[\s*input\s*,\s*hx\s*\]", r"\[\s*u\s*;\s*x\s*\]", r"(order|ordering)[^.?]{0,40}(concat\w*|cat\b|input and (the )?(state|hx))",
              r"(concat\w*|torch\.cat)[^.?]{0,40}(order|revers\w*|swap\w*|the other way|wrong way)",
              r"(input|u)\s+(first|before)[^.?]{0,30}(state|hx)"])
class CfCCellCatOrder(ReferenceCfCCell):
    def forward(self, input, hx, ts):
        z = self.backbone(torch.cat([hx, input], dim=1))
        h, g = torch.tanh(self.ff1(z)), torch.tanh(self.ff2(z))
        gate = torch.sigmoid(-self.time_a(z) * ts + self.time_b(z))
        return gate * g + (1 - gate) * h


@wrong("8.2", "heads g and h linear (no tanh): g = ff2(z), h = ff1(z) unbounded",
       names=[r"tanh[^.?]{0,40}(missing|forgot\w*|dropped|left out|omitted|not applied|absent)",
              r"(missing|forgot\w*|without|no)[^.?]{0,20}tanh", r"g\s*=\s*tanh|h\s*=\s*tanh",
              r"(unbounded|outside \[\s*[−-]1|bounded|\[\s*[−-]1\s*,\s*1\s*\])[^.?]{0,40}(g\b|h\b|head|state)",
              r"(g\b|h\b|heads?)[^.?]{0,40}(linear|not squash\w*|unbounded)"])
class CfCCellNoTanh(ReferenceCfCCell):
    def forward(self, input, hx, ts):
        z = self.backbone(torch.cat([input, hx], dim=1))
        h, g = self.ff1(z), self.ff2(z)
        gate = torch.sigmoid(-self.time_a(z) * ts + self.time_b(z))
        return gate * g + (1 - gate) * h


# ----- Exercise 8.3: a CNN applied to every frame -------------------------------------------------------------

@wrong("8.3", "unfolded as out.reshape(T, B, …): the B·T rows were folded batch-major, so frames land in the wrong "
              "sequences",
       names=[r"\(T,\s*B", r"(same|matching) order[^.?]{0,30}(fold|unfold|reshape)",
              r"(unfold\w*|reshap\w*)[^.?]{0,40}(order|\(B,\s*T)", r"(batch|B)[- ]major|row b\s*[·*]\s*T\s*\+\s*t",
              r"(frames?|time steps?)[^.?]{0,40}(wrong|other|different) (sequence|video|batch)",
              r"(batch|B) and (time|T)[^.?]{0,30}(mixed|swapped|scrambled|interleaved|transposed)"])
def per_frame_unfold_time_first(net, video):
    B, T = video.shape[:2]
    out = net(video.reshape(B * T, *video.shape[2:]))
    return out.reshape(T, B, *out.shape[1:]).transpose(0, 1)


@wrong("8.3", "a loop over frames stacked with torch.stack's default dim=0: (T, B, …) instead of (B, T, …)",
       names=[r"\(T,\s*B", r"dim\s*=\s*1", r"stack\w*[^.?]{0,40}(dim|axis|first|0)",
              r"(time|\bT\b)[^.?]{0,30}(first|leading|axis 0|before (the )?batch)[^.?]{0,30}(batch|\bB\b|stack)",
              r"(batch|B) and (time|T)[^.?]{0,30}(swapped|transposed|exchanged|the other way)"])
def per_frame_stack_time_first(net, video):
    return torch.stack([net(video[:, t]) for t in range(video.shape[1])])


@wrong("8.3", "output reshaped to (B, T, −1): the decoder's image (1, H, W) flattened instead of keeping the net's "
              "own output shape",
       names=[r"out\.shape\[1:\]", r"(own|net'?s?|network'?s?) output shape", r"flatten\w*[^.?]{0,40}(image|output|\(1,\s*H)",
              r"\(B,\s*T,\s*[−-]1\)", r"\(B,\s*T,\s*1,\s*H,\s*W\)[^.?]{0,30}(instead|not|expected)",
              r"(keep|preserv\w*)[^.?]{0,30}(shape|axes|dimensions)[^.?]{0,20}(after|of the (net|network|output))"])
def per_frame_flattened(net, video):
    B, T = video.shape[:2]
    out = net(video.flatten(0, 1))
    return out.reshape(B, T, -1)


@wrong("8.3", "B, T, C, H, W = video.shape: assumes every frame is an image, fails on the decoder's (B, T, D) input",
       names=[r"\*frame|\*video\.shape\[2:\]", r"(any|every|arbitrary|general)[^.?]{0,30}(frame )?shape",
              r"(vector|embedding|\(B,\s*T,\s*D\))[^.?]{0,40}(frame|input|decoder)",
              r"(assum\w*|hard-?cod\w*)[^.?]{0,40}(image|five|5|C,\s*H,\s*W|\(B,\s*T,\s*1)",
              r"(unpack\w*|too (few|many) values)"])
def per_frame_assumes_image(net, video):
    B, T, C, H, W = video.shape
    out = net(video.reshape(B * T, C, H, W))
    return out.reshape(B, T, *out.shape[1:])


# ----- Exercise 8.4: the causal mask (eq. (8.8)) --------------------------------------------------------------

@wrong("8.4", "triu: an upper triangle, so frame t may read every later frame s ≥ t and none before it",
       names=[r"\btril\b", r"\btriu\b", r"upper[- ]triang\w*", r"lower[- ]triang\w*",
              r"(later|future)[^.?]{0,30}(frames?)[^.?]{0,30}(allowed|True|visible|read)", r"s\s*(≥|>=|>)\s*t\b"])
def causal_mask_triu(T):
    return torch.ones(T, T, dtype=torch.bool).triu()


@wrong("8.4", "tril(−1): the diagonal excluded, so frame t cannot read itself (and frame 0 reads nothing)",
       names=[r"diagonal[^.?]{0,30}(exclud\w*|missing|False|included|must be True)|(exclud\w*|missing|without)[^.?]{0,20}diagonal", r"(itself|its own frame|own position)", r"s\s*(≤|<=)\s*t\b[^.?]{0,30}(not|instead|rather)",
              r"(strict\w*|s\s*<\s*t\b)", r"tril\(\s*[−-]1\s*\)|diagonal\s*=\s*[−-]1",
              r"(frame|row) 0[^.?]{0,30}(nothing|no frame|empty|all False)"])
def causal_mask_strict(T):
    return torch.ones(T, T, dtype=torch.bool).tril(-1)


@wrong("8.4", "returned PyTorch's src_mask convention (True = blocked, ~tril): the mask inverted",
       names=[r"invert\w*[^.?]{0,30}(mask|convention|true|false)", r"\bnegat\w*[^.?]{0,30}mask|mask[^.?]{0,30}negat\w*", r"~\s*causal_mask|~\s*tril|~\s*mask",
              r"True\s*(=|means|for)\s*(block\w*|masked|forbidden|not allowed)",
              r"(PyTorch|src_mask|attention layer)'?s?[^.?]{0,30}(convention|True = blocked)",
              r"(True|False)[^.?]{0,20}(and|↔|<->|swapped with)[^.?]{0,10}(False|True)"])
def causal_mask_inverted(T):
    return ~torch.ones(T, T, dtype=torch.bool).tril()


@wrong("8.4", "torch.tril(torch.ones(T, T)): a float 0/1 mask, not a boolean tensor",
       names=[r"\bbool\w*", r"(bool|boolean)[^.?]{0,30}dtype|dtype[^.?]{0,30}(bool|boolean)", r"float\w*[^.?]{0,30}(instead|not|rather|mask)", r"torch\.bool",
              r"(0/1|zeros and ones|1\.0)[^.?]{0,30}(instead|not|rather|True)"])
def causal_mask_float(T):
    return torch.tril(torch.ones(T, T))


# ----- Exercise 8.5: the hybrid (eqs. (8.6)–(8.8)) ------------------------------------------------------------

@wrong("8.5", "liquid module before the transformer: the stages run in the wrong order",
       names=[r"(wrong|stage|module)s? order|order of the (stages|modules|components)", r"(liquid|CfC)[^.?]{0,40}(before|ahead of|first)[^.?]{0,20}transformer",
              r"transformer[^.?]{0,40}(after|second|last)[^.?]{0,20}(liquid|CfC)",
              r"transformer[^.?]{0,20}(then|before|first)[^.?]{0,20}(liquid|CfC)", r"\bswap\w*[^.?]{0,30}(g\b|h\b|heads?|liquid|transformer|order)"])
class HybridLiquidFirst(ReferenceHybrid):
    def forward(self, video, gaps=None):
        z = per_frame(self.encoder, video)
        if self.liquid is not None:
            z = self.liquid(z, gaps)
        if self.transformer is not None:
            z = self.transformer(z)
        return per_frame(self.decoder, z)


@wrong("8.5", "gaps not passed to the liquid module: self.liquid(z) runs every step with ts = 1 whatever the gaps",
       names=[r"gaps?[^.?]{0,40}(ignored|unused|never|not (passed|used|given)|dropped|lost|no effect)",
              r"(pass\w*|forward\w*|giv\w*)[^.?]{0,30}gaps", r"ts\s*=\s*1\b", r"self\.liquid\(z,\s*gaps\)",
              r"(irregular|time (gaps?|between))[^.?]{0,40}(ignored|no effect|not used|unused)"])
class HybridDropsGaps(ReferenceHybrid):
    def forward(self, video, gaps=None):
        z = per_frame(self.encoder, video)
        if self.transformer is not None:
            z = self.transformer(z)
        if self.liquid is not None:
            z = self.liquid(z)
        return per_frame(self.decoder, z)


@wrong("8.5", "output shifted inside the model (output t := decoded t + 1): output t reads frame t + 1, a future frame",
       names=[r"(future|later|next) frames?[^.?]{0,40}(leak\w*|read\w*|depend\w*|see\w*|us\w*)",
              r"(depend\w*|reads?|sees?|uses?|leak\w*)[^.?]{0,40}(future|later|next|t\s*\+\s*1) frames?",
              r"\bleak\w*", r"\bshift\w*", r"causal\w*[^.?]{0,30}(broken|violat\w*|not)",
              r"(alignment|align\w*)[^.?]{0,40}(loss|training)"])
class HybridShiftsOutput(ReferenceHybrid):
    def forward(self, video, gaps=None):
        z = per_frame(self.encoder, video)
        if self.transformer is not None:
            z = self.transformer(z)
        if self.liquid is not None:
            z = self.liquid(z, gaps)
        out = per_frame(self.decoder, z)
        return torch.cat([out[:, 1:], out[:, -1:]], dim=1)  # output t is the prediction of frame t + 1


@wrong("8.5", "decoder applied to (B, T, D) directly, not per frame: its Unflatten reads T as the feature axis",
       names=[r"per_frame[^.?]{0,40}(decod\w*|missing|not used|forgot\w*)", r"decod\w*[^.?]{0,40}(per[_ ]frame|every frame|each frame|fold\w*)",
              r"(fold\w*|flatten\w*)[^.?]{0,30}(time|T)[^.?]{0,20}(into )?(the )?batch",
              r"(decod\w*)[^.?]{0,40}\(B,\s*T,\s*D\)", r"\(N,\s*D\)[^.?]{0,30}(expect\w*|decod\w*)"])
class HybridDecoderNotPerFrame(ReferenceHybrid):
    def forward(self, video, gaps=None):
        z = per_frame(self.encoder, video)
        if self.transformer is not None:
            z = self.transformer(z)
        if self.liquid is not None:
            z = self.liquid(z, gaps)
        return self.decoder(z)


@wrong("8.5", "z = z + self.transformer(z): a second residual around a layer that already adds its own, so the "
              "embeddings count twice",
       names=[r"residual", r"z\s*\+\s*self\.transformer", r"(residual|skip)[^.?]{0,30}(counted|added|applied) twice|doubl\w* (residual|skip|z\b)|2\s*[·*×]\s*z\b",
              r"(already|own)[^.?]{0,30}(residual|skip|adds)", r"\bskip[- ]connection"])
class HybridExtraResidual(ReferenceHybrid):
    def forward(self, video, gaps=None):
        z = per_frame(self.encoder, video)
        if self.transformer is not None:
            z = z + self.transformer(z)
        if self.liquid is not None:
            z = self.liquid(z, gaps)
        return per_frame(self.decoder, z)
