"""``sphere_attention(u, beta=1.0, tangent=true)``: the weight-free self-attention of the
interacting-particle model of Transformers (Geshkovski, Letrouit, Polyanskiy and Rigollet,
"A mathematical perspective on Transformers", arXiv 2312.10794, and "The emergence of
clusters in self-attention dynamics", arXiv 2305.05465), token-wise

    S[u](x) = Σ_y softmax_y(β ⟨u(x), u(y)⟩) u(y)                       (tangent=false)
    P⊥_u S[u](x) = S[u](x) − (⟨u(x), S[u](x)⟩ / ⟨u(x), u(x)⟩) u(x)      (tangent=true)

— attention with identity query, key and value matrices at inverse temperature β (no
1/√C), every token (extra tokens included) attending to every real token, itself
included; padding keys are outside the domain.  With ``tangent=true`` (the default) the
value is projected onto the tangent space of the sphere through u(x): the continuous
projection of GLPR's flow ẋ_i = P⊥_{x_i}(Σ_j e^{β⟨x_i,x_j⟩} x_j / Σ_k e^{β⟨x_i,x_k⟩}),
under which each token's norm is conserved (d/dt |u(x)|² = 2⟨u, P⊥_u S⟩ = 0).  A token
u(x) = 0 has no tangent space; its value is S[u](x) unprojected.  With one channel the
sphere S⁰ = {±1} has no tangent directions, and the projected value is exactly 0.  This is
a different thing from the post-step renormalization of the ``norm`` stabilizer (rmsnorm or
layernorm with ``placement: post``), which projects the state back after each step.

The projection uses the operator's operand, so ``sphere_attention(u)`` is GLPR's vector
field at the state.  It is one operator, not ``tangent(self_attention(u))``, because an
operator's hooks (torch printing, the NumPy oracle) see the value of their operand only,
not the state: a separate ``tangent(v)`` = v − (⟨u, v⟩/⟨u, u⟩) u would need the state u
in the operator protocol.

The call owns no weights (a module per call site holding β, like ``layernorm(u,
affine=false)``), so a spec made of it is a parameter-free ODE on the token positions.
"""

from __future__ import annotations

from pdelang.compiler.operators.base import Option, Operator, drawn_bool
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.operators.attention import numpy_softmax


class SphereAttention(OperatorCall):
    op_name = "sphere_attention"

    def _latex_body(self, printer):
        return r"P^{\perp}\mathcal{S}_{\beta}\left[" + printer._print(self.args[0]) + r"\right]"


def numpy_sphere_attention(x, beta: float, tangent: bool, key_mask=None):
    """S[x] (and its tangent projection) in float64; x: (B, N, C), key_mask: (B, N) bool."""
    import numpy as np  # lazy: numpy

    x = np.asarray(x, dtype=np.float64)
    scores = beta * (x @ x.transpose(0, 2, 1))  # (B, N, N)
    if key_mask is not None:
        scores = np.where(key_mask[:, None, :], scores, -np.inf)
    y = numpy_softmax(scores, axis=-1) @ x  # (B, N, C)
    if tangent and x.shape[-1] == 1:  # the sphere S⁰ has no tangent directions
        return np.zeros_like(y)
    if tangent:
        squared = (x * x).sum(axis=-1, keepdims=True)
        along = (x * y).sum(axis=-1, keepdims=True) / np.where(squared > 0, squared, 1.0)
        y = y - along * x
    return y


class SphereAttentionOperator(Operator):
    name = "sphere_attention"
    category = "interaction"
    meaning = ("P⊥_u Σ_y softmax_y(β⟨u(x), u(y)⟩) u(y): weight-free self-attention, projected "
               "onto the sphere's tangent space at u(x) (tangent=false: unprojected)")
    options = (Option("beta", "float", 1.0, minimum=0.0, doc="inverse temperature β"),
               Option("tangent", "bool", True,
                      doc="project onto the tangent space at u(x) (GLPR's flow on the sphere)"))
    positional_options = ()
    local = False
    learned = True  # a module per call site (holding β); it owns no weights
    sympy_class = SphereAttention
    runtime_blocks = (("sphere_attention", "SphereAttention"),)

    def learnable(self, options) -> bool:
        return False

    def parameter_shapes(self, channels, options, dims):
        return {}

    def torch_expr(self, node, operand: str, model) -> str:
        return f"self.{node.module}({operand}, ctx)"

    def torch_module(self, module) -> str:
        o = module.options
        return f"SphereAttention(beta={float(o['beta'])!r}, tangent={bool(o['tangent'])!r})"

    def numpy_eval(self, node, x, oracle, layer, ctx):
        options = oracle.module_options(node.module)
        return numpy_sphere_attention(x, float(options["beta"]), bool(options["tangent"]),
                                      ctx.key_mask)

    def draw_call(self, draw, ctx, operand: str) -> str:
        from hypothesis import strategies as st  # lazy: hypothesis

        opts = []
        if draw(st.booleans()):
            opts.append(f"beta={draw(st.sampled_from(['0.0', '0.5', '1.0', '3']))}")
        if draw(st.booleans()):
            opts.append(f"tangent={drawn_bool(draw)}")
        return f"sphere_attention({', '.join([operand, *opts])})"


OPERATOR = SphereAttentionOperator()
