"""Every ``--rb-*`` option of routebench's locustfile, typed and written once.

One contract, three spellings, all made here from :class:`Options`:

- the Locust process registers the options (:func:`add_arguments`, on ``init_command_line_parser``)
  and reads Locust's ``parsed_options`` into an :class:`Options` (:meth:`Options.read`, :class:`Reader`);
- routebench.locust_cluster starts a master with :meth:`Options.argv`;
- and posts each driven test as a web form, which Locust's ``POST /swarm`` sets on the master's
  options: :meth:`Options.form`.

The web UI's start form is checked here too (:func:`check_form`): a value the target would reject is
refused with the reason before any load is sent. Neither Locust nor gevent is imported: the runner
uses this module.

A driven master also answers the runner at :data:`STATE_PATH` (locustfiles.plugin.webui serves it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

# How an option travels. The work sizes travel as text: Locust's web UI posts every field as a string
# and converts it to the option's type, so an int option would turn an emptied field into a crash.
# Empty means "the server's default"; anything else is checked against the target's bounds.
# The master's runner state and its workers', uncached: Locust's /stats/requests keeps its answer
# two seconds (its DEFAULT_CACHE_TIME), so a worker that just connected or a test that just stopped
# is not yet there.
STATE_PATH = "/routebench/state"

SIZE = "size"  # int | None, as text ("" for None)
NUMBER = "number"  # float
TEXT = "text"  # str
FLAG = "flag"  # bool, a bare flag
NAMES = "names"  # tuple[str, ...], comma-separated


@dataclass(frozen=True)
class Spec:
    """How one field of :class:`Options` is spelled: Locust's attribute (and form field) ``dest``."""

    dest: str
    kind: str
    help: str
    web_ui: bool = False  # a field of the web UI's start form
    per_test: bool = False  # posted with each driven test; the others are the master's, from its argv
    choices: tuple[str, ...] = ()
    param: str = ""  # a work size: its query parameter on the target

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")


def _option(default: Any, dest: str, kind: str, help: str, **more: Any) -> Any:
    return field(default=default, metadata={"rb": Spec(dest, kind, help, **more)})


@dataclass(frozen=True)
class Options:
    """routebench's options of one Locust process (or of one test: the web form changes them)."""

    wait_ms: int | None = _option(
        None,
        "rb_ms",
        SIZE,
        "wait per request d in ms (empty: the server's default)",
        web_ui=True,
        per_test=True,
        param="ms",
    )
    work: int | None = _option(
        None,
        "rb_work",
        SIZE,
        "CPU work in loop iterations, cpu family (empty: server default)",
        web_ui=True,
        per_test=True,
        param="work",
    )
    fanout: int | None = _option(
        None,
        "rb_k",
        SIZE,
        "fan-out width k, fanout family (empty: server default)",
        web_ui=True,
        per_test=True,
        param="k",
    )
    model: str = _option(
        "closed", "rb_model", TEXT, "load model", web_ui=True, per_test=True, choices=("closed", "open")
    )
    rate: float = _option(
        10.0, "rb_rate", NUMBER, "open model: requests/s per style, in all", web_ui=True, per_test=True
    )
    warmup_s: float = _option(0.0, "rb_warmup", NUMBER, "seconds excluded before measuring", web_ui=True, per_test=True)
    canary: str = _option(
        "",
        "rb_canary",
        TEXT,
        "a trivial route of the target (its URL, or its path on the target), requested beside the load "
        "by one more user at --rb-canary-rate, its latency counted from each intended start in either "
        "model: what the rest of the app feels (empty: none)",
        per_test=True,
    )
    canary_rate: float = _option(0.0, "rb_canary_rate", NUMBER, "the canary's requests/s", per_test=True)
    tail_s: float = _option(
        0.0,
        "rb_tail",
        NUMBER,
        "open model, fixed run time: the last seconds of the run keep the load on but measure no new start, "
        "so every start of the window finished or outlasted them when the test stops",
        per_test=True,
    )
    finish_s: float = _option(
        0.0,
        "rb_finish",
        NUMBER,
        "closed model, stopping itself: after the window the users go on until every request started in it "
        "has finished, at most 3x the longest latency seen (1 s at least) and never more than this many "
        "seconds; 0: the requests in flight at the stop are censored",
        per_test=True,
    )
    run_time_s: float = _option(
        0.0,
        "rb_run_time",
        NUMBER,
        "headless: stop after this many seconds, collect every worker's final report, save, quit",
        per_test=True,
    )
    out: str = _option("", "rb_out", TEXT, "directory for exact histograms (master)", per_test=True)
    driven: bool = _option(
        False,
        "rb_driven",
        FLAG,
        "a program drives this master's tests through its web API (POST /swarm per test): each test "
        "saves to its own --rb-out and stops itself after --rb-run-time",
    )
    precision: float = _option(
        0.0,
        "rb_precision",
        NUMBER,
        "stop a test once every style's p99 is known to within this relative half width (95%% interval), "
        "after --rb-run-time and before --rb-max-run-time (0: fixed run time)",
        per_test=True,
    )
    max_run_time_s: float = _option(
        0.0,
        "rb_max_run_time",
        NUMBER,
        "with --rb-precision: stop here whether or not the p99s are precise",
        per_test=True,
    )
    default_classes: tuple[str, ...] = _option(
        (), "rb_default_classes", NAMES, "web UI: comma-separated user classes ticked when the form opens"
    )
    retry_lost: bool = _option(
        False,
        "rb_retry_lost",
        FLAG,
        "let geventhttpclient resend an idempotent request whose connection died (off: it fails, with its reason)",
    )
    no_capture: bool = _option(
        False, "rb_no_capture", FLAG, "record no exact histograms (to measure what the capture costs)"
    )

    @classmethod
    def read(cls, parsed: Any) -> Options:
        """The options as Locust parsed them (its ``parsed_options``; None or a missing one: the default)."""
        values = vars(parsed) if parsed is not None else {}
        return cls(**{f.name: _decode(spec, values[spec.dest]) for f, spec in _SPECS if spec.dest in values})

    def argv(self) -> list[str]:
        """These options on a Locust command line: each one not at its default."""
        out: list[str] = []
        for f, spec in _SPECS:
            value = getattr(self, f.name)
            if value != f.default:
                out += [spec.flag] if spec.kind == FLAG else [spec.flag, _encode(spec, value)]
        return out

    def form(self) -> dict[str, str]:
        """The options of one test as fields of Locust's ``POST /swarm`` form (it sets every option
        it is sent, keeping the option's type)."""
        return {spec.dest: _encode(spec, getattr(self, f.name)) for f, spec in _SPECS if spec.per_test}

    def work_sizes(self) -> dict[str, int]:
        """The per-request work sizes asked for, as the target's query parameters (unset ones left out)."""
        return {param: value for name, param in _SIZES if (value := getattr(self, name)) is not None}

    @property
    def open_model(self) -> bool:
        return self.model == "open"

    def precision_settings(self) -> dict[str, float]:
        """A precision-driven test's target and windows (seconds of measuring, warm-up excluded), or nothing."""
        if self.precision <= 0:
            return {}
        return {
            "precision_target": self.precision,
            "min_window_s": self.run_time_s - self.warmup_s,
            "max_window_s": self.max_run_time_s - self.warmup_s,
        }


_SPECS = [(f, f.metadata["rb"]) for f in fields(Options)]
_DESTS = tuple(spec.dest for _, spec in _SPECS)
_SIZES = [(f.name, spec.param) for f, spec in _SPECS if spec.kind == SIZE]
DEFAULT = Options()


def _by_kind(kind: str) -> list[Spec]:
    return [spec for _, spec in _SPECS if spec.kind == kind]


def spec_of(name: str) -> Spec:
    """The spelling of the field ``name`` of :class:`Options`."""
    return next(spec for f, spec in _SPECS if f.name == name)


def _decode(spec: Spec, raw: Any) -> Any:
    if spec.kind == SIZE:
        text = str(raw or "").strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{spec.flag} {text!r}: not an integer") from None
    if spec.kind == NUMBER:
        return float(raw or 0.0)
    if spec.kind == FLAG:
        return bool(raw)
    if spec.kind == NAMES:
        return tuple(name for name in str(raw or "").split(",") if name)
    return str(raw or "")


def _encode(spec: Spec, value: Any) -> str:
    if spec.kind == SIZE:
        return "" if value is None else str(value)
    if spec.kind == NUMBER:
        return repr(float(value))  # every digit: the form and the argv give back the same float
    if spec.kind == FLAG:
        return "true" if value else "false"  # Locust's web UI takes "true" as True
    if spec.kind == NAMES:
        return ",".join(value)
    return str(value)


def add_arguments(parser: Any) -> None:
    """Register every option on Locust's parser (``init_command_line_parser``), in the web form's order."""
    for f, spec in _SPECS:
        kwargs: dict[str, Any] = {"help": spec.help, "include_in_web_ui": spec.web_ui}
        if spec.kind == FLAG:
            kwargs |= {"action": "store_true", "default": False}
        elif spec.kind == NUMBER:
            kwargs |= {"type": float, "default": f.default}
        else:
            kwargs["default"] = _encode(spec, f.default)
        if spec.choices:
            kwargs["choices"] = list(spec.choices)
        parser.add_argument(spec.flag, **kwargs)


class Reader:
    """The options as Locust holds them now. Locust rewrites ``parsed_options`` under us (the master on
    each ``POST /swarm``, a worker on each spawn message, mid-test too when the form is edited while
    running), so they are read again whenever one of their raw values changed: a tuple compare on the
    request path instead of decoding every field per request."""

    def __init__(self) -> None:
        self._raw: tuple[Any, ...] | None = None
        self._options = DEFAULT

    def __call__(self, parsed: Any) -> Options:
        values = vars(parsed) if parsed is not None else {}
        raw = tuple(values.get(dest) for dest in _DESTS)
        if raw != self._raw:
            self._options, self._raw = Options.read(parsed), raw
        return self._options


def check_form(form: Mapping[str, Any]) -> str | None:
    """Why the web UI's start form would make the target reject every request, or None."""
    from target_app.params import PARAMS  # here: it loads FastAPI, which only a master's form check needs

    for spec in _by_kind(SIZE):
        raw = str(form.get(spec.dest, "")).strip()
        if not raw:
            continue
        bounds = PARAMS[spec.param]
        if not raw.lstrip("-").isdigit() or not bounds.low <= int(raw) <= bounds.high:
            return f"{spec.dest} = {raw!r}: must be {bounds.describe()}, or empty for the server's default"
    for name in ("rate", "warmup_s"):
        dest = spec_of(name).dest
        if dest not in form:
            continue  # not posted: the option keeps its value
        raw = str(form[dest]).strip()
        try:
            value = float(raw)
        except ValueError:
            return f"{dest} = {raw!r}: must be a number"
        if not 0 <= value < 1e6 or (name == "rate" and value == 0):
            return f"{dest} = {raw!r}: out of range"
    return None
