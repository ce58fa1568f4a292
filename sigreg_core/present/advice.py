"""What a verdict means and what to try: one line per level and per mode, for two kinds of encoder.

The users of this tool train two kinds of encoder, and the same numbers mean different things:

* **JEPA / SIGReg-trained** encoders (LeJEPA, arXiv 2511.08544; LeWorldModel, arXiv 2603.19312)
  are pushed towards N(0, I) by the loss itself: any departure is the regulariser losing, and
  the fix is in its weight, its slices or the predictor.
* **Contrastive / pretrained** encoders (SimCLR, CLIP-style heads, sentence encoders) aim at
  uniformity on the sphere plus alignment of views (Wang & Isola, ICML 2020), not at N(0, I):
  they sit in a cone (mean cosine 0.1-0.8, Ethayarajh, EMNLP 2019), use part of their dimensions
  (Jing et al., ICLR 2022) and have outlier dimensions (Kovaleva et al., 2021).  A distance from
  N(0, I) is expected there; what matters is whether they are collapsing (few effective
  directions; the health answer), and how they compare with their own earlier checkpoints.

Every line here is ours (no text from files), plain text; callers escape for their sink.
"""
from __future__ import annotations

__all__ = ["LEVEL_ADVICE", "MODE_ADVICE", "advice_lines"]

#: level -> (what it means, for a JEPA/SIGReg encoder, for a contrastive/pretrained encoder)
LEVEL_ADVICE = {
    "healthy": ("as many effective directions as N(0, I) and no significant departure",
                "the regulariser is doing its job; keep its weight",
                "unusually isotropic for a contrastive encoder: check the set is not random noise"),
    "mild": ("uses 1/16 to 1/4 of the directions N(0, I) uses, or departs from it in a named way",
             "a small loss of isotropy: watch the trend over steps before changing λ",
             "typical of good pretrained encoders (sentence transformers and ImageNet CNNs score here)"),
    "marked": ("uses 1/64 to 1/16 of the directions N(0, I) uses",
               "the regulariser is losing: raise the SIGReg weight or the number of slices",
               "a narrow representation (small task-specific CNN heads score here): fine for its task, weak as a general embedding"),
    "severe": ("uses under 1/64 of the directions N(0, I) uses: a few directions carry almost everything",
               "close to collapse: raise the SIGReg weight, check the predictor is not trivial",
               "a poor embedding for retrieval or probes; compare with an earlier checkpoint"),
    "collapsed": ("fewer than two effective directions with the rows pointing one way (mean cosine above 0.9), or an exact rank loss",
                  "collapse: the encoder ignores its input; restart from an earlier checkpoint with a larger λ",
                  "what untrained networks look like (rank collapse at initialisation); a trained model here is broken"),
}

#: mode -> (what it is, what to try)
MODE_ADVICE = {
    "full_collapse": ("every row points (almost) the same way", "compare with an earlier checkpoint; raise λ"),
    "dimensional_collapse": ("the variation uses few dimensions", "raise λ or the slices; check for dead units"),
    "outliers": ("a few rows far from the rest", "export them (outlier CSV) and look at their inputs"),
    "shift": ("the mean is not at 0", "a convention for contrastive encoders (centre them); for SIGReg a lagging loss"),
    "scale": ("the spread is not 1 per dimension", "a convention for normalised rows; for SIGReg check λ and the output layer"),
    "anisotropy": ("some directions carry much more variance", "whiten for retrieval; for SIGReg raise the slices"),
    "heavy_tails": ("some projections have heavy tails", "look at the rows at the tails; clip or normalise features"),
    "multimodal": ("some projections split into clusters", "clusters can be real classes; check them against labels"),
}


def advice_lines(verdict: str, modes=(), *, meaning: bool = False) -> list[tuple[str, str]]:
    """[(title, plain text)]: what to try for each kind of encoder, and per mode (``meaning``: the level's
    meaning first, for sinks that do not show it as the headline)."""
    out = []
    if verdict in LEVEL_ADVICE:
        means, jepa, contrastive = LEVEL_ADVICE[verdict]
        if meaning:
            out.append(("What it means", means))
        out.append(("JEPA / SIGReg-trained", jepa))
        out.append(("Contrastive / pretrained", contrastive))
    for m in modes or ():
        if m in MODE_ADVICE:
            what, tip = MODE_ADVICE[m]
            out.append((m.replace("_", " "), f"{what}; {tip}"))
    return out
