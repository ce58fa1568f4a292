"""The statistic core: what the SIGReg loss needs, and nothing else.

Presets of the Epps–Pulley quadrature (:mod:`.presets`), LeJEPA's seeded direction
draw and its background prefetch (:mod:`.directions`), the streaming ECF sums
(:mod:`.ecf`; the compiled numba kernels in :mod:`.ecf_kernels`, imported at the first
CPU call), the differentiable statistic and ``SIGReg`` module (:mod:`.statistic`),
torch.distributed reductions
(:mod:`.distributed`), device choice (:mod:`.device`) and the exact null law of one
slice (:mod:`.nulllaw`, its on-disk table cache :mod:`.lawcache`, and the p-value
combinations :mod:`.combine`; these alone need SciPy and are never imported by the loss).
Nothing here imports pandas, plotly, Streamlit or the rest of the package.
"""
