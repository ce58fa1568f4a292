"""The names of the slice families, importable without torch (the CLI's parser needs only these).

What each family is lives in :mod:`sigreg_core.assessment.families`.
"""
FAMILIES = ("random", "coordinate", "principal", "worst")
