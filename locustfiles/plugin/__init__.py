"""routebench inside a Locust process: everything the thin locustfile (``locustfiles/route_styles.py``)
puts into Locust, one module per concept.

- :mod:`.options`: every ``--rb-*`` option, typed, once (Locust's arguments, the web form, the argv);
- :mod:`.plan`: the run's routes plan (your app's routes, or your own locustfile's classes);
- :mod:`.users`: the user classes, one per route style or route;
- :mod:`.window`: a process's measured window and the censoring at its close (pure);
- :mod:`.measure`: what a process with users does with it (open, record, close, report);
- :mod:`.record`, :mod:`.lifecycle`, :mod:`.stop`, :mod:`.save`: the master's tests, from start to
  their saved files, and the precision stop (pure);
- :mod:`.webui`, :mod:`.login`: the web UI's routebench tab, its form check and its password;
- :mod:`.resend`: lost requests stay failures;
- :mod:`.state`: the one per-process state the listeners share;
- :mod:`.hooks`: the Locust events each of the above listens to.

Importing this package (or :mod:`.options`, :mod:`.plan`) loads neither Locust nor gevent, so the
runner can take the options' spelling and the plan's record from here; only :func:`.hooks.install`,
called by the locustfile, ties anything to Locust.
"""
