"""A small shop API, written the way services are (not like routebench's target app): the
sample app routebench's tests point ``--app`` at."""
