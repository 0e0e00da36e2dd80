"""The analysis pipeline: small pure stages from a run directory to tables and a report.

load (files -> tidy DataFrames, contracts checked) -> summarise (per cell and style) -> render.
"""
