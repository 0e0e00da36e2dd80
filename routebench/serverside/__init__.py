"""routebench's part inside the server's worker processes: the harness around your app, the
telemetry sampler, the loop-stall watchdog, Gunicorn's configuration, and what is read of your app
and its environment before any load.

It runs in your app's own interpreter (any Python >= 3.9) with nothing but the standard library:
the launcher puts it on that interpreter's path (a directory holding only the ``routebench``
package), installs nothing into your environment, and imports none of routebench's other modules
there. The lab's own app (``target_app``) uses the same instruments.
"""
