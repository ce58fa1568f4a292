"""Mutation check of the verdict's rules: each mutation must make tests/test_verdict_rules.py fail.

Each mutation is one textual change to the library (the rule broken on purpose), applied to a
copy of the package in a temporary folder; the rule tests run against that copy in a child
process.  A mutation that leaves the tests green is a rule the tests cannot see (reported
"SURVIVED", exit 1).  The table printed is the one in docs/calibration.md.

Usage:  python scripts/mutation_check.py [-k NAME]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (file, text, replacement)
MUTATIONS = {
    "a detected mode no longer makes it at least mild": (
        "sigreg_core/assessment/verdict.py", "if has_mode or (np.isfinite(effect)", "if (np.isfinite(effect)"),
    "Monte Carlo tail without subtracting q_K": (
        "sigreg_core/assessment/montecarlo.py", "lp = float(log_p - qk + math.log(", "lp = float(log_p + math.log("),
    "views: view 0's numbers instead of the deciding view's": (
        "sigreg_core/assessment/assess.py", "    w = views[worst_i]\n", "    w = views[0]\n"),
    "views: view 0's SIGReg instead of the mean over views": (
        "sigreg_core/assessment/assess.py", "    sig = float(np.mean([a.sigreg for a in views]))",
        "    sig = float(views[0].sigreg)"),
    "plain Cauchy instead of the Cauchy-Bonferroni minimum": (
        "sigreg_core/core/combine.py", "    lm = min(v for v in (lc, lb) if not math.isnan(v)) + math.log(2.0)",
        "    lm = lc"),
    "no cap at 0.99 inside the Cauchy sum": (
        "sigreg_core/core/combine.py", "cauchy_combination(log_p=np.minimum(log_p, math.log(P_CAP)), weights=weights)",
        "cauchy_combination(log_p=log_p, weights=weights)"),
    "dead eigenvalues below N = 2D cut at 1e-9 (float32 blind)": (
        "sigreg_core/assessment/verdict.py", "NEAR_ZERO_EIGEN = 1e-5", "NEAR_ZERO_EIGEN = 1e-9"),
    "--fail-on passes a verdict it does not rank": (
        "sigreg_core/assessment/verdict.py", "        return True, f\"verdict {text or 'none'!r} is not ranked",
        "        return False, f\"verdict {text or 'none'!r} is not ranked"),
    "health entropy on singular values instead of their squares": (
        "sigreg_core/assessment/health.py", "    return ev, spread", "    return np.sqrt(ev), spread"),
    "views gated at 1e-3 each (no multiplicity)": (
        "sigreg_core/assessment/assess.py", "    gate = V.GATE_P / v\n", "    gate = V.GATE_P\n"),
    "no-Monte-Carlo p-value back to the raw Cauchy": (
        "sigreg_core/assessment/assess.py", "        p, lp = max(ev.bonferroni_p, nl.P_FLOOR), nl.bonferroni(",
        "        p, lp = raw_p, ev.verdict_log_p + 0 * nl.bonferroni("),
    "collapse without the mean-cosine condition": (
        "sigreg_core/assessment/verdict.py", "r < COLLAPSE_DIRECTIONS and math.isfinite(cos) and cos > COLLAPSE_COSINE",
        "r < COLLAPSE_DIRECTIONS"),
    "collapse below 3 directions instead of 2": (
        "sigreg_core/assessment/verdict.py", "COLLAPSE_DIRECTIONS = 2.0", "COLLAPSE_DIRECTIONS = 3.0"),
}


def run(name: str, mutation: tuple, tests: str) -> tuple[str, float]:
    path, old, new = mutation
    with tempfile.TemporaryDirectory(prefix="lh-mut-") as tmp:
        shutil.copytree(ROOT / "sigreg_core", Path(tmp) / "sigreg_core",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (Path(tmp) / "tests").mkdir()
        for f in ("conftest.py", Path(tests).name):  # the tests run from the copy (conftest puts its root first)
            shutil.copy2(ROOT / "tests" / f, Path(tmp) / "tests" / f)
        target = Path(tmp) / path
        text = target.read_text()
        if text.count(old) != 1:
            return "NOT APPLIED (text not found once)", 0.0
        target.write_text(text.replace(old, new))
        env = dict(os.environ, PYTHONPATH=tmp, LATENT_HEALTH_CACHE=str(Path(tmp) / "cache"))
        probe = subprocess.run([sys.executable, "-c", "import sigreg_core; print(sigreg_core.__file__)"], cwd=tmp,
                               env=env, capture_output=True, text=True).stdout.strip()
        if not probe.startswith(tmp):
            return f"NOT APPLIED (imported {probe})", 0.0
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                            str(Path(tmp) / "tests" / Path(tests).name)], cwd=tmp, env=env, capture_output=True, text=True)
        if "sigreg_core" not in r.stdout + r.stderr and r.returncode not in (0, 1):
            return f"ERROR (pytest exit {r.returncode})", time.perf_counter() - t0
        dt = time.perf_counter() - t0
        if r.returncode == 0:
            return "SURVIVED", dt
        failed = [ln.split("::")[-1].split(" ")[0] for ln in r.stdout.splitlines() if ln.startswith("FAILED")]
        return "caught by " + (", ".join(failed) or f"pytest exit {r.returncode}"), dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="run only mutations whose name contains this")
    ap.add_argument("--tests", default="tests/test_verdict_rules.py")
    args = ap.parse_args(argv)
    survived = 0
    print("| mutation | result |")
    print("|---|---|")
    for name, m in MUTATIONS.items():
        if args.k and args.k not in name:
            continue
        res, dt = run(name, m, args.tests)
        survived += res.startswith(("SURVIVED", "NOT APPLIED"))
        print(f"| {name} | {res} ({dt:.0f} s) |", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
