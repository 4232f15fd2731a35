"""The chapter's tensors and matrix products, as :mod:`.roles` reads a shape error with them: each quantity's layout
in the case's named sizes, and the names learners give it."""
from __future__ import annotations

from utils.checks.attention.roles import Product, Quantity

# ---- attention: eqs. (1.1), (1.7)–(1.9)
Q = Quantity("Q", (("Tq", "d_k"),), ("q", "query", "queries"), "the queries", source=True)
K = Quantity("K", (("Tk", "d_k"),), ("k", "key", "keys"), "the keys", source=True)
V = Quantity("V", (("Tk", "d_v"),), ("v", "value", "values"), "the values", source=True)
S = Quantity("S", (("Tq", "Tk"),), ("scores", "s", "logits", "scores_scaled", "scaled_scores"), "the scores")
P = Quantity("P", (("Tq", "Tk"),), ("p", "weights", "attn", "attn_weights", "probs", "w", "att", "attention"),
             "the attention weights, one row per query")
OUTPUT = Quantity("O", (("Tq", "d_v"),), ("out", "output", "o", "result"), "the output")

ATTENTION = (Q, K, V, S, P, OUTPUT)
ATTENTION_PRODUCTS = (Product("S", "Q", "Kᵀ", "S = Q Kᵀ/√d_k (eq. (1.1))"),
                      Product("O", "P", "V", "O = P V (eq. (1.1))"))

# ---- the backward pass of 1.3
D_O = Quantity("dO", (("Tq", "d_v"),), ("grad_out", "grad_output", "dout", "d_out", "do", "g", "grad_o", "go"),
               "the gradient of the output", source=True)
D_P = Quantity("dP", (("Tq", "Tk"),), ("grad_p", "dp", "d_p", "grad_weights", "grad_attn", "dw", "grad_w"),
               "the gradient of the weights")
D_S = Quantity("dS", (("Tq", "Tk"),), ("grad_scores", "grad_s", "ds", "d_s", "grad_logits", "dscores", "d_scores",
                                       "grad_score"), "the gradient of the scores")
D_Q = Quantity("dQ", (("Tq", "d_k"),), ("grad_q", "dq", "d_q", "grad_query"), "the gradient of q")
D_K = Quantity("dK", (("Tk", "d_k"),), ("grad_k", "dk", "grad_key"), "the gradient of k")
D_V = Quantity("dV", (("Tk", "d_v"),), ("grad_v", "dv", "grad_value"), "the gradient of v")

FUNCTION = (*ATTENTION, D_O, D_P, D_S, D_Q, D_K, D_V)
FUNCTION_PRODUCTS = (*ATTENTION_PRODUCTS,
                     Product("dV", "Pᵀ", "dO", "dV = Pᵀ dO (eq. (1.7))"),
                     Product("dP", "dO", "Vᵀ", "dP = dO Vᵀ (eq. (1.7))"),
                     Product("dQ", "dS", "K", "dQ = c·dS K (eq. (1.9))"),
                     Product("dK", "dSᵀ", "Q", "dK = c·dSᵀ Q (eq. (1.9))"))

# ---- tiled attention, eq. (1.11): one block of keys at a time
ONE_PER_QUERY = ("m and ℓ are one number per query, (…, Tq, 1): reduce a block's scores over its keys, "
                 "amax(dim=-1, keepdim=True) and sum(dim=-1, keepdim=True) (eq. (1.11))")
K_BLOCK = Quantity("K_block", (("block_size", "d_k"),), ("k_block", "kb", "k_blk", "k_tile", "k_j", "kj", "k_b",
                                                         "key_block", "keys_block"), "a block of k's rows",
                   hint="A block of k is k[..., start:start + block_size, :]: the keys axis is the second-to-last.")
V_BLOCK = Quantity("V_block", (("block_size", "d_v"),), ("v_block", "vb", "v_blk", "v_tile", "v_j", "vj", "v_b",
                                                         "value_block", "values_block"), "a block of v's rows",
                   hint="A block of v is v[..., start:start + block_size, :], the same rows as the block of k.")
S_BLOCK = Quantity("S_block", (("Tq", "block_size"),), ("scores", "s", "s_block", "block_scores", "logits"),
                   "a block's scores")
E_BLOCK = Quantity("e^(S−m')", (("Tq", "block_size"),), ("exp_scores", "e", "p", "p_block", "exp_s", "es",
                                                          "weights", "p_tilde", "exps"), "a block's exponentials")
RUNNING_MAX = Quantity("m", (("Tq", "1"),), ("running_max", "m", "new_max", "m_new", "max_so_far", "row_max", "m_i",
                                             "m_prev"), "the running maximum, one per query", hint=ONE_PER_QUERY)
RUNNING_SUM = Quantity("ℓ", (("Tq", "1"),), ("running_sum", "l", "ell", "denom", "l_new", "row_sum", "l_i",
                                             "denominator", "normaliser", "normalizer", "sum_exp", "l_prev"),
                       "the running sum, one per query", hint=ONE_PER_QUERY)
ACCUMULATOR = Quantity("a", (("Tq", "d_v"),), ("output", "acc", "accumulator", "o", "out", "a", "numerator", "o_i",
                                               "result", "acc_v"), "the accumulated output, one row per query",
                       hint="a holds one row of v's width per query: torch.zeros(q.shape[:-1] + v.shape[-1:]) "
                            "(torch.zeros_like(q) has q's width, d_k)")

TILED = (Q, K, V, K_BLOCK, V_BLOCK, S_BLOCK, E_BLOCK, RUNNING_MAX, RUNNING_SUM, ACCUMULATOR)
TILED_PRODUCTS = (Product("S_block", "Q", "K_blockᵀ", "a block's scores S = Q K_blockᵀ/√d_k (eq. (1.11))"),
                  Product("a", "e^(S−m')", "V_block", "a' = e^(m − m')·a + e^(S − m') V_block (eq. (1.11))"))

# ---- multi-head self-attention, eq. (1.10)
X = Quantity("x", (("B", "T", "D"),), ("x", "inputs", "hidden"), "the input", source=True)
HEAD_Q = Quantity("q", (("B", "T", "D"), ("B", "H", "T", "Dh")), ("q", "query", "queries"), "the queries")
HEAD_K = Quantity("k", (("B", "T", "D"), ("B", "H", "T", "Dh")), ("k", "key", "keys"), "the keys")
HEAD_V = Quantity("v", (("B", "T", "D"), ("B", "H", "T", "Dh")), ("v", "value", "values"), "the values")
HEAD_S = Quantity("S", (("B", "H", "T", "T"),), ("scores", "s", "logits", "weights", "attn", "p", "probs", "att"),
                  "the scores or weights of every head")
MASK = Quantity("the mask", (("T", "T"), ("B", "1", "T", "T"), ("B", "1", "1", "T"),
                             ("1", "1", "T", "T"), ("B", "H", "T", "T")),
                ("mask", "may_attend", "allowed", "causal_mask", "attn_mask", "can_attend"),
                "may attend: (query, key) pairs")
HEADS = (X, HEAD_Q, HEAD_K, HEAD_V, HEAD_S, MASK)
HEADS_PRODUCTS = (Product("S", "q", "kᵀ", "S = q_h k_hᵀ/√Dh per head (eq. (1.10))"),)

# ---- FNet, eq. (1.13)
MIXED_X = Quantity("X", (("T", "D"),), ("x",), "the input", source=True)
W_T = Quantity("W_T", (("T", "T"),), ("w_t", "wt", "w_seq", "dft_t", "f_t", "w_tokens"), "the DFT along the sequence")
W_D = Quantity("W_D", (("D", "D"),), ("w_d", "wd", "w_hidden", "dft_d", "f_d", "w_features"),
               "the DFT along the hidden axis")
FOURIER = (MIXED_X, W_T, W_D)
FOURIER_PRODUCTS = (Product("W_T X", "W_T", "X", "W_T @ x @ W_D, the sequence axis mixed by W_T (T × T) from the "
                                                 "left (eq. (1.13))"),
                    Product("X W_D", "X", "W_D", "W_T @ x @ W_D, the hidden axis mixed by W_D (D × D) from the right "
                                                 "(eq. (1.13))"))
