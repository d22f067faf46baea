"""The ``energyscope`` command line: ``inspect``, ``analyze``, ``sweep`` and ``report``.

Bad input (a malformed checkpoint, wrong shapes, a missing file) prints one line ``energyscope: error: ...`` to stderr
and exits with status 2; an unexpected failure prints one line and exits with status 1 (set ``ENERGYSCOPE_DEBUG=1``
for the traceback). Threads: torch follows ``OMP_NUM_THREADS``; ``--threads N`` sets torch's thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from energyscope.errors import EnergyscopeError

if TYPE_CHECKING:  # the command line imports these lazily (a quick --help, a clear error when one is missing)
    from energyscope.analysis import Analysis
    from energyscope.landscape import Landscape

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CLIError(EnergyscopeError, ValueError):
    """A user error found by the command line itself (bad --data file, missing analysis module)."""


# ---------------------------------------------------------------------------------------------- helpers
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]
    return " ".join(text.split()) or type(exc).__name__


def _fmt_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def _fmt_stats(s: dict) -> str:
    if "mean" not in s:
        return f"n={s['n']}, all non-finite"
    text = f"mean {s['mean']:.4g} ± {s['std']:.3g}  [min {s['min']:.4g}, max {s['max']:.4g}]  (n={s['n']}"
    return text + (f", {s['n_nonfinite']} non-finite)" if s["n_nonfinite"] else ")")


def _setup(args: argparse.Namespace) -> None:
    from energyscope._tensor import set_threads
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be at least 1, got {args.threads}")
        set_threads(args.threads)


def _load_args(args: argparse.Namespace) -> dict:
    return {"model": args.model, "trust_pickle": args.trust_pickle, "device": args.device, "spec": args.spec}


# ---------------------------------------------------------------------------------------------- inspect
def format_description(info: dict) -> str:
    """The human-readable text ``energyscope inspect`` prints for :func:`describe_checkpoint`'s dict."""
    land = info["landscape"]
    rows: list[tuple[str, str]] = [
        ("checkpoint", f"{info['path']} ({_fmt_size(info['size_bytes'])})"),
        ("layout", info["layout"] + (" (unpickled: trusted)" if info.get("pickled") else "")),
    ]
    if info.get("ignored"):
        rows.append(("ignored", ", ".join(info["ignored"])))
    for note in info.get("notes", []):
        rows.append(("note", note))
    rows.append(("latent dim", str(land["dim"])))
    conv = f"{land['convention']}"
    if land["reduction"]:
        conv += f" (reduction {land['reduction']})"
    conv += f", temperature {land['temperature']:g}"
    base = f"base prior {land['base_prior']} (σ={land['base_sigma']:g})" if land["base_prior"] else "no base prior"
    conv += f", {base}"
    rows.append(("convention", conv))
    rows.append(("evaluated", f"{land['dtype']} on {land['device']}"))
    sm = land.get("smoothness") or {}
    if sm:
        rows.append(("smoothness", sm.get("message") or sm.get("kind", "unknown")))
    for role in ("energy", "decoder", "encoder"):
        n = land.get(f"{role}_parameters")
        arch = info["architectures"].get(role)
        if arch is None and n is None:
            continue
        count = f"{n:,} parameters" if n is not None else "callable"
        rows.append((role, f"{count}: {arch}" if arch else count))
    if not land.get("decoder_parameters") and "decoder" not in info["architectures"]:
        rows.append(("decoder", "none"))
    ds = info.get("data_shape")
    rows.append(("data shape", "unknown" if ds is None else "(" + ", ".join(map(str, ds)) + ")"))
    sampler = land.get("sampler") or {}
    rows.append(("sampler", ", ".join(f"{k}={v}" for k, v in sampler.items()) if sampler else "not given"))
    n_ref = land.get("n_reference")
    if n_ref:
        text = f"{n_ref} latents"
        labels = info.get("labels")
        if labels:
            shown = ", ".join(f"{k}: {v}" for k, v in list(labels.items())[:12])
            text += f"; labels: {len(labels)} classes ({shown}{', ...' if len(labels) > 12 else ''})"
        else:
            text += "; no labels"
        rows.append(("reference", text))
    else:
        rows.append(("reference", "none (sign check and data mass need reference latents; analyze --data adds them)"))
    meta = {k: v for k, v in (land.get("metadata") or {}).items() if k not in ("data_shape", "convention_guess")}
    if meta:
        rows.append(("metadata", ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in meta.items())[:400]))
    energy = info["energy"]
    rows.append(("U on base", _fmt_stats(energy["base"])))
    if "reference" in energy:
        rows.append(("U on reference", _fmt_stats(energy["reference"])))
    sc = info.get("sign_check")
    rows.append(("sign check", "not possible without reference latents" if sc is None
                 else sc["message"].removeprefix("sign check ")))
    if info.get("convention_caution"):
        rows.append(("caution", info["convention_caution"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def cmd_inspect(args: argparse.Namespace) -> int:
    from energyscope.io.checkpoint import describe_checkpoint
    _setup(args)
    info = describe_checkpoint(args.checkpoint, n_samples=args.samples, seed=args.seed, **_load_args(args))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_description(info))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- analyze / report
def attach_data(land: Landscape, path: str | os.PathLike, space: str = "auto") -> None:
    """Reference latents (and labels) from an npz file (:func:`energyscope.io.data_file.attach_data`); a bad file is
    one :class:`CLIError`."""
    from energyscope.io.data_file import DataFileError
    from energyscope.io.data_file import attach_data as attach
    try:
        attach(land, path, space)
    except DataFileError as exc:
        raise CLIError(str(exc)) from None


def check_output_dir(out: Path) -> None:
    """Fail before any work when results could not be written to ``out``: it is a file, lies under a file, or
    it (or the folder it would be created in) is not writable. Creates nothing."""
    for p in [out, *out.parents]:
        if not p.exists():
            continue
        if not p.is_dir():
            where = "is a file" if p == out else f"lies under {p}, which is a file"
            raise CLIError(f"cannot write results to {out}: it {where}")
        if not os.access(p, os.W_OK | os.X_OK):
            what = "it is" if p == out else f"{p} is"
            raise CLIError(f"cannot write results to {out}: {what} not writable")
        return


def _pipeline_module() -> Any:
    """:mod:`energyscope.pipeline` (which holds ``analyze`` and, through it, ``Analysis``), or one clear error."""
    try:
        from energyscope import pipeline
    except ImportError as exc:
        raise CLIError(f"the analysis pipeline is not available in this installation ({_one_line(exc)})") from None
    return pipeline


def cmd_analyze(args: argparse.Namespace) -> int:
    from energyscope.io.checkpoint import load_checkpoint
    _setup(args)
    pipeline = _pipeline_module()
    if args.restarts is not None and args.restarts < 1:
        raise CLIError(f"--restarts must be at least 1, got {args.restarts}")
    if args.time_limit is not None and not args.time_limit > 0:
        raise CLIError(f"--time-limit must be a positive number of seconds, got {args.time_limit:g}")
    if not (np.isfinite(args.temperature) and args.temperature > 0):
        raise CLIError(f"--temperature must be a positive number, got {args.temperature:g}")
    if args.bounds is not None and not np.isfinite(args.bounds).all():
        raise CLIError(f"--bounds must be finite numbers, got {args.bounds[0]:g} {args.bounds[1]:g}")
    if args.bounds is not None and not args.bounds[0] < args.bounds[1]:
        raise CLIError(f"--bounds needs LO < HI, got {args.bounds[0]:g} {args.bounds[1]:g}")
    out = Path(args.output) if args.output else Path(Path(args.checkpoint).stem + "_energyscope")
    check_output_dir(out)
    land = load_checkpoint(args.checkpoint, **_load_args(args))
    if args.data is not None:
        attach_data(land, args.data, args.data_space)
    elif args.data_space != "auto":
        raise CLIError("--data-space needs --data")
    from energyscope.io.checkpoint import convention_caution
    caution = convention_caution(land)
    if caution:
        warnings.warn(caution, stacklevel=1)
    from energyscope.io.results import lock_output
    with lock_output(out):  # a second writer is refused now, not after the analysis (hours, perhaps)
        result = pipeline.analyze(land, seed=args.seed, n_restarts=args.restarts, progress=not args.quiet,
                                  bounds=None if args.bounds is None else tuple(args.bounds),
                                  time_limit=args.time_limit, kinetics_kwargs={"temperature": args.temperature})
        _save_or_rescue(result, out)
        # once the new results are saved, a report from an earlier run must not sit beside them if we are
        # interrupted before it is rewritten (`energyscope report OUT` rebuilds it)
        (out / "report.html").unlink(missing_ok=True)
        report = result.write_report(out / "report.html")
    if not args.quiet:
        print(result.summary())
        print(f"results: {out}/analysis.json, {out}/arrays.npz\nreport:  {report}")
    why = result.unusable
    if why:   # what could be computed is saved; the exit status and the last line say the result is not usable
        print(f"energyscope: error: the result is not usable: {_one_line(Exception(why))}", file=sys.stderr)
        return EXIT_UNUSABLE
    return EXIT_OK


def _save_or_rescue(result: Analysis, out: Path) -> None:
    """Save to ``out``; if that fails (disk full, folder removed), save to a fresh temporary folder instead and stop
    with one line naming both, so that an analysis that took hours is not lost."""
    try:
        result.save(out)
    except OSError as exc:
        import tempfile
        rescue = Path(tempfile.mkdtemp(prefix="energyscope-rescued-"))
        try:
            result.save(rescue)
        except OSError:
            raise CLIError(f"could not write results to {out}: {exc.strerror or _one_line(exc)}; nor to {rescue}") \
                from None
        raise CLIError(f"could not write results to {out}: {exc.strerror or _one_line(exc)}; they were saved to "
                       f"{rescue} instead (energyscope report {rescue} draws the report)") from None


def cmd_report(args: argparse.Namespace) -> int:
    pipeline = _pipeline_module()
    out = Path(args.out)
    if not out.is_dir():
        raise CLIError(f"results folder not found: {out} (run 'energyscope analyze' first)")
    from energyscope.io.results import lock_output
    result = pipeline.Analysis.load(out)
    with lock_output(out):
        report = result.write_report(out / "report.html")
    print(f"report: {report}")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    _setup(args)
    from energyscope.sweep import sweep
    if args.restarts is not None and args.restarts < 1:
        raise CLIError(f"--restarts must be at least 1, got {args.restarts}")
    if args.scheduler and (args.workers is not None or args.serial):
        raise CLIError("--scheduler runs on an existing cluster; --workers and --serial choose another place")
    if args.serial and args.workers is not None:
        raise CLIError("--serial runs in this process; --workers sets the size of a local cluster")
    out = Path(args.output)
    check_output_dir(out)
    client = args.scheduler or ("serial" if args.serial else None)
    load = {"model": args.model, "trust_pickle": args.trust_pickle, "device": args.device, "spec": args.spec}
    analyze = {"masses": not args.no_masses, "time_limit": args.time_limit}
    if args.restarts is not None:
        analyze["n_restarts"] = args.restarts
    result = sweep(args.checkpoints, client=client, output=out, workers=args.workers, threads=args.task_threads,
                   seed=args.seed, load=load, data=args.data, data_space=args.data_space, order=args.order,
                   progress=not args.quiet, **analyze)
    if not args.quiet:
        print(result.summary())
        print(f"results: {out}/sweep.json, {out}/checkpoints/\nreport:  {out}/report.html")
    if result.failed:
        print(f"energyscope: error: {len(result.failed)} of {len(result.rows)} checkpoints have no usable results "
              f"(first: {result.failed[0]['name']}: {_one_line(Exception(result.failed[0]['reason'] or '?'))})",
              file=sys.stderr)
        return EXIT_UNUSABLE
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from energyscope._version import __version__
    parser = argparse.ArgumentParser(
        prog="energyscope",
        description="Make a learned energy landscape readable: minima, saddles, disconnectivity graph, decoded "
                    "prototypes. Checkpoints: docs/checkpoint-format.md.",
        epilog="Exit status: 0 success, 2 bad input (one-line message), 3 analyze wrote its results but they are "
               "not usable (no minimum found, or the minima or network stage failed; the last line says why), "
               "1 unexpected error "
               "(ENERGYSCOPE_DEBUG=1 shows the traceback). Threads follow OMP_NUM_THREADS unless --threads is given.")
    parser.add_argument("--version", action="version", version=f"energyscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def loader_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.pt/.ckpt/TorchScript)")
        p.add_argument("--model", metavar="M", help="entry point 'pkg.module:fn' or 'path/to/file.py:fn' that "
                                                    "builds the Landscape from the loaded checkpoint (and receives "
                                                    "checkpoint_path= when it accepts it); runs your own code")
        p.add_argument("--spec", metavar="FILE", help="JSON (or YAML) spec: per role a key prefix of any depth "
                                                      "(netG.gen), a list of parts (trunk, head) or null to leave "
                                                      "it out; layers, activations, conventions, data shape")
        p.add_argument("--trust-pickle", action="store_true",
                       help="allow files that carry code: pickled Python objects (whole modules) and TorchScript "
                            "archives; runs code from the file: only for files you trust")
        p.add_argument("--device", default="cpu", metavar="D", help="cpu (default), cuda, cuda:1, or auto")
        p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: OMP_NUM_THREADS)")

    p = sub.add_parser("inspect", help="validate and describe a checkpoint",
                       description="Validate a checkpoint and describe it: layout, conventions, dims, parameter "
                                   "counts, data shape, sampler, reference latents and labels, energy statistics on "
                                   "base samples vs reference latents, and the sign check.")
    loader_options(p)
    p.add_argument("--samples", type=int, default=2048, metavar="N", help="base samples for the statistics")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed for the base samples")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("analyze", help="run the full analysis and write the HTML report",
                       description="Find minima, transition states and paths, build the disconnectivity graph, "
                                   "interpret the basins, and write OUT/report.html, OUT/analysis.json and "
                                   "OUT/arrays.npz.")
    loader_options(p)
    p.add_argument("-o", "--output", metavar="OUT",
                   help="results folder (default: <checkpoint name>_energyscope in the current folder)")
    p.add_argument("--restarts", type=int, metavar="N",
                   help="restarts per round of the minima search (rounds are added until its coverage is complete, "
                        "up to 32 N restarts in all)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed for every stochastic step (default 0)")
    p.add_argument("--data", metavar="FILE", help="npz with 'x' (data, encoded to reference latents through the "
                                                   "encoder) and optional 'y' (labels)")
    p.add_argument("--data-space", choices=("auto", "data", "latent"), default="auto",
                   help="what --data x is: 'data' (encoded through the encoder), 'latent' (points of the energy's "
                        "own input space, used as they are: input-space models such as JEM or flows); 'auto' "
                        "(default): 'data' when there is an encoder, else 'latent'")
    p.add_argument("--bounds", nargs=2, type=float, metavar=("LO", "HI"),
                   help="box [LO, HI]^d for the restarts' start points (default: ±3 σ_z about the reference mean "
                        "or the origin, grown until U rises towards every face)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="time for each stage after the minima search: once spent, bands, descents and chains stop "
                        "where they are and no new part starts (recorded; the verdict says so)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="temperature of the kinetics section (default 1: the prior itself; times are in the model's "
                        "sampler steps only at T = 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("sweep", help="analyse many checkpoints (on Dask) and track their basins over training",
                       description="Analyse every checkpoint as one task on a Dask cluster (a local one by default), "
                                   "save each as 'analyze' does under OUT/checkpoints/NAME/, follow the basins from "
                                   "checkpoint to checkpoint (births, deaths, merges, splits) and write "
                                   "OUT/report.html, OUT/sweep.json and OUT/sweep.npz. Run again on the same OUT, "
                                   "finished checkpoints are read back, not recomputed.")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="checkpoint files, in training order by the last number in their names (ckpt_000040.pth)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the sweep's folder")
    where = p.add_argument_group("where the checkpoints are analysed (default: a local Dask cluster)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    where.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of the local Dask cluster (default: the CPU count, at most 8)")
    where.add_argument("--serial", action="store_true", help="in this process, one after the other (no Dask)")
    p.add_argument("--task-threads", type=int, default=1, metavar="N",
                   help="torch threads per checkpoint (default 1: the same bits on every worker)")
    p.add_argument("--order", choices=("natural", "given"), default="natural",
                   help="natural (default): by the last number in each file name when every name has one; given: as "
                        "listed")
    p.add_argument("--model", metavar="M", help="entry point that builds each Landscape (as for analyze)")
    p.add_argument("--spec", metavar="FILE", help="JSON (or YAML) spec of the checkpoints' layout (as for analyze)")
    p.add_argument("--trust-pickle", action="store_true", help="allow files that carry code (as for analyze)")
    p.add_argument("--device", default="cpu", metavar="D", help="cpu (default), cuda, cuda:1, or auto")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads of this process")
    p.add_argument("--restarts", type=int, metavar="N", help="restarts per round of each minima search")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of every analysis (default 0)")
    p.add_argument("--data", metavar="FILE", help="npz with 'x' and optional 'y', attached to every checkpoint")
    p.add_argument("--data-space", choices=("auto", "data", "latent"), default="auto", help="as for analyze")
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help="per-stage time limit of each analysis")
    p.add_argument("--no-masses", action="store_true", help="skip the mass estimates (faster; the timeline then "
                                                             "sizes nothing by mass)")
    p.add_argument("--quiet", action="store_true", help="no progress and no summary")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="rebuild the HTML report from saved results",
                       description="Rebuild OUT/report.html from OUT/analysis.json and OUT/arrays.npz.")
    p.add_argument("out", metavar="OUT", help="results folder written by 'energyscope analyze'")
    p.set_defaults(func=cmd_report)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"energyscope: warning: {_one_line(Warning(str(message)))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 bad input, 1 unexpected, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    debug = os.environ.get("ENERGYSCOPE_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _show_warning
        try:
            return int(args.func(args))
        except KeyboardInterrupt:
            print("energyscope: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except EnergyscopeError as exc:  # a problem with the input: one line, exit 2
            if debug:
                raise
            print(f"energyscope: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except Exception as exc:  # noqa: BLE001 - anything else is a bug (ours, or in the model's own code)
            if debug:
                raise
            print(f"energyscope: error: unexpected {type(exc).__name__}: {_one_line(exc)} (an internal error: "
                  "please report it; ENERGYSCOPE_DEBUG=1 shows the traceback)", file=sys.stderr)
            return EXIT_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
