"""The statistic core: what the SIGReg loss needs, and nothing else.

Presets of the Epps–Pulley quadrature (:mod:`.presets`), LeJEPA's seeded direction
draw (:mod:`.directions`), the streaming ECF kernel (:mod:`.ecf`), the differentiable
statistic and ``SIGReg`` module (:mod:`.statistic`), torch.distributed reductions
(:mod:`.distributed`), device choice (:mod:`.device`) and the exact null law of one
slice (:mod:`.nulllaw`, which alone needs SciPy and is never imported by the loss).
Nothing here imports pandas, plotly, Streamlit or the rest of the package.
"""
