#!/usr/bin/env python3
"""Write a SYNTHETIC results file in the layout of schemas/results.md.

This is a test fixture, not real data: no model was trained, every number is
made up by a closed-form formula with a fixed random seed. It exists so that
drift-report, docs/read_results_example.py and their tests can run without a
trained experiment. Do not quote anything in it as a result.

The file mimics a toy 2-D experiment (the paper's Fig. 3/4 setting): a grid of
3 generator initializations x 2 temperature sets x 1 batch size = 6 cells.

    cell 0000..0002  kernel.temperatures = [0.02, 0.05, 0.2]   status done
    cell 0003        kernel.temperatures = [0.05], init "between"   status failed
                     (crashed at step 420, before the first evaluation)
    cell 0004        kernel.temperatures = [0.05], init "far"       status done
    cell 0005        kernel.temperatures = [0.05], init "collapsed" status diverged
                     (m_tau and loss turn NaN at step 1300)

Every group, dataset and attribute of schemas/results.md is written, with the
exact types: strings are variable-length UTF-8, metrics float64, samples
float32, counters int64. Also written: /cells/<id>/real_samples (float32
[n, 2], held-out real samples for plotting against the generated ones).

Usage: make_example_results.py OUT.h5 [--name NAME]
"""
import argparse
import datetime
import os
import sys

import h5py
import numpy as np

STR = h5py.string_dtype("utf-8")

STEPS = 2000
LOG_EVERY = 20
EVAL_EVERY = 500
SAMPLE_STEPS = [0, 200, 1000, 2000]
N_SAMPLES = 512
METRICS = ["mmd", "energy", "sliced_w"]
MODES = np.array([[-2.0, 0.0], [2.0, 0.0]])
MODE_WEIGHTS = np.array([0.5, 0.5])
MODE_STD = 0.3

GRID_KEYS = ["generator.init", "kernel.temperatures", "train.n_gen"]
# (init, temperatures, n_gen, status, steps_done)
CELLS = [
    ("between", [0.02, 0.05, 0.2], 256, "done", STEPS),
    ("far", [0.02, 0.05, 0.2], 256, "done", STEPS),
    ("collapsed", [0.02, 0.05, 0.2], 256, "done", STEPS),
    ("between", [0.05], 256, "failed", 420),
    ("far", [0.05], 256, "done", STEPS),
    ("collapsed", [0.05], 256, "diverged", 1300),
]
DIVERGED_AT = 1300
FAILED_ERROR = "cell process killed by signal 9 (SIGKILL) at step 420: out of memory"
FAILED_STDERR = (
    "[drift] cell 0003: step 400 loss 3.0012 m_tau_0.05 1.84e-01\n"
    "[drift] cell 0003: step 420 loss 2.9987 m_tau_0.05 1.79e-01\n"
    "terminate called after throwing an instance of 'c10::Error'\n"
    "  what():  DefaultCPUAllocator: can't allocate memory\n")


def toml_value(v):
    """A grid value as TOML text."""
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def summary_value(v):
    """A grid value as stored in /summary: lists as TOML text, strings bare."""
    return toml_value(v) if isinstance(v, list) else v


def real_samples(rng, n):
    k = rng.choice(len(MODES), size=n, p=MODE_WEIGHTS)
    return (MODES[k] + MODE_STD * rng.standard_normal((n, 2))).astype(np.float32)


def init_samples(rng, init, n):
    if init == "between":
        centre, std = np.array([0.0, 0.0]), 0.2
    elif init == "far":
        centre, std = np.array([6.0, 6.0]), 0.5
    else:  # collapsed on the right-hand mode
        centre, std = MODES[1], 0.1
    return centre + std * rng.standard_normal((n, 2))


def generated(rng, init, step, n):
    """Generated samples at `step`: moving from the initialization toward p."""
    a = 1.0 - np.exp(-step / 350.0)
    return ((1.0 - a) * init_samples(rng, init, n) + a * real_samples(rng, n)).astype(np.float32)


def config_toml(name, init, temps, n_gen, seed):
    return f"""[experiment]
name = "{name}"
seed = {seed}
output = "results/{name}.h5"
device = "cpu"
threads = 0

[data]
dataset = "bimodal"

[generator]
plugin = "mlp"
init = "{init}"

[encoder]
plugin = "identity"

[kernel]
plugin = "laplace"
temperatures = {toml_value(temps)}

[normalizer]
plugin = "feature_drift"

[train]
steps = {STEPS}
n_classes = 0
n_gen = {n_gen}
n_pos = 256
lr = 0.001
warmup = 100
eval_every = {EVAL_EVERY}

[eval]
metrics = ["mmd", "energy", "sliced_w"]
n_samples = 2048
"""


def experiment_toml(name):
    return f"""# SYNTHETIC test fixture written by tools/make_example_results.py
[experiment]
name = "{name}"
seed = 0
output = "results/{name}.h5"
device = "cpu"

[data]
dataset = "bimodal"

[generator]
plugin = "mlp"

[encoder]
plugin = "identity"

[kernel]
plugin = "laplace"

[normalizer]
plugin = "feature_drift"

[train]
steps = {STEPS}
eval_every = {EVAL_EVERY}

[eval]
metrics = ["mmd", "energy", "sliced_w"]

[grid]
"generator.init" = ["between", "far", "collapsed"]
"kernel.temperatures" = [[0.02, 0.05, 0.2], [0.05]]
"train.n_gen" = [256]
"""


def tau_name(t):
    return repr(float(t))


def write_cell(f, index, cell, name, rng):
    init, temps, n_gen, status, steps_done = cell
    values = dict(zip(GRID_KEYS, [init, temps, n_gen]))
    g = f.create_group(f"cells/{index:04d}")
    seed = 1000 + index

    # --- train: one row per logged step --------------------------------------
    steps = np.arange(LOG_EVERY, steps_done + 1, LOG_EVERY, dtype=np.int64)
    if steps_done % LOG_EVERY:
        steps = np.append(steps, np.int64(steps_done))
    fields = [("step", np.int64), ("loss", np.float64)]
    fields += [(f"m_tau_{tau_name(t)}", np.float64) for t in temps]
    fields += [("grad_norm", np.float64), ("lr", np.float64), ("seconds", np.float64)]
    train = np.zeros(len(steps), dtype=fields)
    train["step"] = steps
    far = 8.0 if init == "far" else 1.0
    for t in temps:
        m0 = far * (0.05 / t)  # larger drift at small temperature
        noise = np.exp(0.1 * rng.standard_normal(len(steps)))
        train[f"m_tau_{tau_name(t)}"] = (m0 * np.exp(-steps / 400.0) + 2e-3 * m0) * noise
    train["loss"] = len(temps) * (1.0 + 0.01 * rng.standard_normal(len(steps)))
    train["grad_norm"] = 0.5 + 2.0 * np.exp(-steps / 300.0)
    train["lr"] = 1e-3 * np.minimum(1.0, steps / 100.0)
    train["seconds"] = 0.004 + 0.0005 * rng.random(len(steps))
    if status == "diverged":
        train["loss"][-1] = np.nan
        for t in temps:
            train[f"m_tau_{tau_name(t)}"][-1] = np.nan
    g.create_dataset("train", data=train)

    # --- eval: one row per evaluation ----------------------------------------
    eval_steps = np.arange(EVAL_EVERY, steps_done + 1, EVAL_EVERY, dtype=np.int64)
    if status == "diverged":
        eval_steps = eval_steps[eval_steps < DIVERGED_AT]
    efields = [("step", np.int64)]
    for m in METRICS:
        efields += [(m, np.float64), (m + "_floor", np.float64)]
    efields += [(f"mode_share_{k}", np.float64) for k in range(len(MODES))]
    efields += [(f"mode_target_{k}", np.float64) for k in range(len(MODES))]
    efields += [("modes_covered", np.int64)]
    ev = np.zeros(len(eval_steps), dtype=efields)
    ev["step"] = eval_steps
    scale = {"mmd": 0.02, "energy": 0.05, "sliced_w": 0.1}
    for m in METRICS:
        ev[m] = scale[m] * (far * np.exp(-eval_steps / 400.0) + 0.05) * (1 + 0.05 * rng.random(len(ev)))
        ev[m + "_floor"] = scale[m] * 0.04 * (1 + 0.05 * rng.random(len(ev)))
    share0 = 0.5 - 0.5 * np.exp(-eval_steps / 300.0) if init == "collapsed" else np.full(len(ev), 0.49)
    ev["mode_share_0"] = share0
    ev["mode_share_1"] = 1.0 - share0
    ev["mode_target_0"] = MODE_WEIGHTS[0]
    ev["mode_target_1"] = MODE_WEIGHTS[1]
    ev["modes_covered"] = (share0 >= 0.25).astype(np.int64) + 1
    g.create_dataset("eval", data=ev)

    # --- samples and real samples --------------------------------------------
    sg = g.create_group("samples")
    for s in SAMPLE_STEPS:
        if s > steps_done:
            continue
        ds = sg.create_dataset(f"{s:010d}", data=generated(rng, init, s, N_SAMPLES))
        ds.attrs.create("step", np.int64(s))
    g.create_dataset("real_samples", data=real_samples(rng, N_SAMPLES))

    # --- attributes -----------------------------------------------------------
    a = g.attrs
    a.create("status", status, dtype=STR)
    a.create("config_toml", config_toml(name, init, temps, n_gen, seed), dtype=STR)
    a.create("grid", "; ".join(f"{k}={toml_value(values[k])}" for k in GRID_KEYS), dtype=STR)
    for k in GRID_KEYS:
        a.create(f"grid.{k}", toml_value(values[k]), dtype=STR)
    a.create("seed", np.int64(seed))
    wall = float(train["seconds"].sum() + 1.5)
    a.create("wall_time_s", np.float64(wall))
    a.create("steps_done", np.int64(steps_done))
    a.create("device", "cpu", dtype=STR)
    if status == "failed":
        a.create("error", FAILED_ERROR, dtype=STR)
        a.create("stderr_tail", FAILED_STDERR, dtype=STR)

    # --- this cell's /summary row (as a dict) ---------------------------------
    row = {"cell": index, "status": status}
    for k in GRID_KEYS:
        row[k] = summary_value(values[k])
    for m in METRICS:
        row[f"final_{m}"] = float(ev[m][-1]) if len(ev) else np.nan
        row[f"final_{m}_floor"] = float(ev[m + "_floor"][-1]) if len(ev) else np.nan
    for t in temps:
        row[f"final_m_tau_{tau_name(t)}"] = float(train[f"m_tau_{tau_name(t)}"][-1])
    row["steps_done"] = steps_done
    row["wall_time_s"] = wall
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the results file to write (overwritten)")
    ap.add_argument("--name", help="experiment name (default: the file name without .h5)")
    args = ap.parse_args(argv)
    name = args.name or os.path.splitext(os.path.basename(args.out))[0]
    rng = np.random.default_rng(0)

    with h5py.File(args.out, "w") as f:
        a = f.attrs
        a.create("experiment_name", name, dtype=STR)
        a.create("experiment_file", f"experiments/{name}.toml", dtype=STR)
        a.create("experiment_toml", experiment_toml(name), dtype=STR)
        a.create("framework_version", "0.1.0", dtype=STR)
        a.create("torch_version", "2.11.0", dtype=STR)
        a.create("created", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), dtype=STR)
        a.create("n_cells", np.int64(len(CELLS)))
        a.create("grid_keys", np.array(GRID_KEYS, dtype=object), dtype=STR)

        rows = [write_cell(f, i, c, name, rng) for i, c in enumerate(CELLS)]

        taus = sorted({t for c in CELLS for t in c[1]})
        sfields = [("cell", np.int64), ("status", STR)]
        sfields += [("generator.init", STR), ("kernel.temperatures", STR), ("train.n_gen", np.int64)]
        for m in METRICS:
            sfields += [(f"final_{m}", np.float64), (f"final_{m}_floor", np.float64)]
        sfields += [(f"final_m_tau_{tau_name(t)}", np.float64) for t in taus]
        sfields += [("steps_done", np.int64), ("wall_time_s", np.float64)]
        summary = np.zeros(len(rows), dtype=sfields)
        for i, row in enumerate(rows):
            for fname, _ in sfields:
                summary[fname][i] = row.get(fname, np.nan)
        f.create_dataset("summary", data=summary)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
