"""routebench: measure what each FastAPI route style does under load."""

__version__ = "0.1.0"
