"""The target app: one wait in every route style, and how it is served."""
