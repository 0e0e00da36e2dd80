"""Which Python and which server-side packages an interpreter has, asked of it.

``python -m routebench.serverside.environment`` prints one JSON object: the interpreter (its
executable, prefix, version) and the version of each package routebench's server side uses or
reports, None where it is not installed. Standard library only, so that it answers in any
environment (an old Python says its version before anything else could fail).
"""

import json
import platform
import sys

PACKAGES = ("fastapi", "starlette", "pydantic", "anyio", "uvicorn", "gunicorn", "uvicorn-worker")


def installed(name):
    try:
        from importlib import metadata
    except ImportError:  # Python before 3.8
        return None
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main():
    print(
        json.dumps(
            {
                "executable": sys.executable,
                "prefix": sys.prefix,
                "python": platform.python_version(),
                "version_info": list(sys.version_info[:3]),
                "packages": {name: installed(name) for name in PACKAGES},
            }
        )
    )


if __name__ == "__main__":
    main()
