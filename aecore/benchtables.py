"""The benchmark's stored JSON as tables: fixed-width for the terminal
(`report`), Markdown for the book (`markdown`, `table`). No measuring
here, and no torch."""

from __future__ import annotations

IMAGES_PER_EPOCH = 60_000   # the seed loader's epoch; every time scales to it

# -- tables ------------------------------------------------------------------

def fmt_num(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def fmt_epoch(row: dict) -> str:
    """Median seconds and the half-range in percent of it."""
    half = (row["s_per_epoch_max"] - row["s_per_epoch_min"]) / 2
    return (f"{fmt_num(row['s_per_epoch'])} "
            f"±{100 * half / row['s_per_epoch']:.0f}%")


def ratio_cells(ratios: dict, names: list[str]) -> list[str]:
    return [fmt_num(ratios[f"{names[0]}/{n}"]) for n in names[1:]]


def speed_rows(result: dict) -> list[list[str]]:
    """Header and one row per architecture, then the data-only row; the
    throughput columns are those of aecore's default pipeline."""
    names = list(result["pipelines"])
    main_pipe = names[-1]
    def show(n):          # "seed@64" -> "DataLoader, b64"
        who, batch = n.split("@")
        return f"{'DataLoader' if who == 'seed' else who}, b{batch}"

    header = ["arch", *(show(n) for n in names),
              *(f"speed-up, b{n.split('@')[-1]}" for n in names[1:]),
              "img/s", "GFLOP/s", "% ceiling"]
    rows = [header]
    for arch, r in result["archs"].items():
        p = r["pipelines"]
        rows.append([
            arch, *(fmt_epoch(p[n]) for n in names),
            *ratio_cells(r["ratios"], names),
            f"{p[main_pipe]['images_per_s']:,.0f}",
            f"{p[main_pipe]['gflops']:.1f}",
            f"{100 * p[main_pipe]['ceiling_fraction']:.1f}",
        ])
    d = result["data_only"]
    rows.append(["data only", *(fmt_epoch(d["pipelines"][n]) for n in names),
                 *ratio_cells(d["ratios"], names),
                 f"{d['pipelines'][main_pipe]['images_per_s']:,.0f}",
                 "–", "–"])
    return rows


def quality_rows(result: dict) -> list[list[str]]:
    ttq = result["time_to_quality"]
    rows = [["arch", f"s to {ttq['target_val_mse']}", "epochs", "steps",
             "last val MSE"]]
    for arch, r in ttq["archs"].items():
        if r["reached"]:
            cells = [fmt_num(r["seconds"]), f"{r['epochs']:.2f}",
                     str(r["steps"])]
        else:
            cells = [f"not reached ({r['stopped']})", "–", "–"]
        rows.append([arch, *cells, f"{r['val_mse']:.5f}"])
    return rows


def fixed_width(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join([row[0].ljust(widths[0]),
                   *(c.rjust(w) for c, w in zip(row[1:], widths[1:]))])
        for row in rows)


def markdown(rows: list[list[str]]) -> str:
    """The rows as a pipe table for the book (a wide one is set smaller
    in the PDF; see `text.fit_width`)."""
    from .text import markdown_table
    return markdown_table(rows[0], rows[1:]).data


def speed_caption(result: dict) -> str:
    names = list(result["pipelines"])
    return (f"Seconds per epoch of {IMAGES_PER_EPOCH:,} images, median "
            f"±half-range over {result['settings']['repeats']} repeat(s); "
            f"xN: {names[0]} time / aecore@N time; img/s, GFLOP/s and "
            f"% of the matmul ceiling for {names[-1]}.")


def quality_caption(result: dict) -> str:
    t = result["time_to_quality"]
    return (f"Training seconds until the validation MSE ([0, 1] scale) "
            f"first reaches {t['target_val_mse']} (checked every "
            f"{t['eval_every']} steps, evaluation time excluded), batch "
            f"{t['batch_size']}, lr {t['lr']}, one-cycle over "
            f"{t['epochs']} epochs, cap {t['cap_s']:g} s.")


def hardware_line(result: dict) -> str:
    h = result["hardware"]
    accelerator = f" ({h['accelerator']})" if h.get("accelerator") else ""
    bf = h.get("native_bf16", {})
    native = ", ".join(k for k, v in bf.items() if v) or "none"
    return (f"{h['date']}  {h['cpu']} (native bf16: {native}), "
            f"{h['threads']} threads, torch "
            f"{h['torch']}, device {h['device']}{accelerator}, malloc "
            f"tuning {'on' if h['malloc_tuned'] else 'off'}")


def ceiling_line(result: dict) -> str:
    c = result["ceiling"]
    return (f"matmul ceiling: {c['size']}×{c['size']} fp32, "
            f"{c['gflops']:.1f} GFLOP/s (best of {c['repeats']}; median "
            f"{c['gflops_median']:.1f}, min {c['gflops_min']:.1f})")


def report(result: dict) -> str:
    """The fixed-width report printed to the terminal."""
    smoke = "  [smoke run: numbers prove it runs, nothing more]"
    return "\n".join([
        hardware_line(result) + (smoke if result["smoke"] else ""),
        ceiling_line(result), "",
        speed_caption(result), fixed_width(speed_rows(result)), "",
        quality_caption(result), fixed_width(quality_rows(result)),
        "", *settings_lines(result), "",
        "per-epoch evaluation against the epoch's training steps:",
        fixed_width(overhead_rows(result)), "",
        "bf16 autocast against fp32 (same seed and epochs):",
        fixed_width(precision_rows(result)), "",
        *side_by_side_lines(result),
        "start-up, fresh processes: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in result["startup"].items()),
    ])


def overhead_rows(result: dict) -> list[list[str]]:
    rows = [["arch", "train s/epoch", "eval s", "eval / train"]]
    for arch, r in result["eval_overhead"].items():
        rows.append([arch, fmt_num(r["train_s"]), fmt_num(r["eval_s"]),
                     f"{r['ratio']:.0%}"])
    return rows


def precision_rows(result: dict) -> list[list[str]]:
    from .text import signed
    rows = [["arch", "fp32 s/epoch", "bf16 s/epoch", "fp32/bf16",
             "fp32 eval s", "bf16 eval s", "fp32 val MSE", "bf16 val MSE",
             "MSE change"]]
    for arch, r in result["precision"].items():
        f, b = r["fp32"], r["bf16"]
        rows.append([arch, fmt_num(f["s_per_epoch"]),
                     fmt_num(b["s_per_epoch"]),
                     f"{f['s_per_epoch'] / b['s_per_epoch']:.2f}",
                     fmt_num(f["eval_s"]), fmt_num(b["eval_s"]),
                     f"{f['val_mse']:.5f}", f"{b['val_mse']:.5f}",
                     signed(b["val_mse"] / f["val_mse"] - 1, "+.1%")])
    return rows


def side_by_side_rows(result: dict) -> list[list[str]]:
    r = result["side_by_side"]
    n = r["cores"]
    rows = [["arch", f"1 run, {n} threads: s/epoch",
             f"{n} runs, 1 thread: s/epoch each", "throughput gain"]]
    for arch, a in r["archs"].items():
        rows.append([arch, fmt_num(a["one_run_s"]),
                     fmt_num(a["each_of_n_s"]), f"{a['gain']:.2f}"])
    return rows


def side_by_side_lines(result: dict) -> list[str]:
    if "side_by_side" not in result:
        return []
    return [f"runs side by side ({result['side_by_side']['precision']}, "
            "fresh processes, taking turns):",
            fixed_width(side_by_side_rows(result)), ""]


def settings_lines(result: dict) -> list[str]:
    effect = result.get("settings_effect")
    if not effect:
        return []
    return [f"{effect['arch']} at batch {effect['batch_size']}, s/epoch: "
            + "; ".join(f"{k}: {v:.2f}"
                        for k, v in effect["s_per_epoch"].items())]


def table(result: dict) -> str:
    """Stored benchmark JSON as Markdown: the speed table, then the
    time-to-quality table."""
    return "\n\n".join([markdown(speed_rows(result)),
                        markdown(quality_rows(result))])


def peer_rows(result: dict, key="rows") -> list[list[str]]:
    """TensorFlow's tutorial models against aecore's rebuilds
    (`peer.measure`): s/epoch per setting and their ratio."""
    rows = [["model", "batch", "threads", "TensorFlow s/epoch",
             "aecore s/epoch", "TF / aecore"]]
    for r in result[key]:
        rows.append([r["model"], str(r["batch"]), str(r["threads"]),
                     fmt_num(r["tensorflow_s"]), fmt_num(r["aecore_s"]),
                     f"{r['ratio']:.2f}"])
    return rows


def peer_report(result: dict) -> str:
    """The terminal report of `bench --peer`."""
    if "skipped" in result:
        return result["skipped"]
    lines = [f"TensorFlow {result['tensorflow']} against aecore, "
             f"{result['images']:,} images per epoch (s/epoch scaled to "
             f"60,000), {result['repeats']} processes each, taking turns:",
             fixed_width(peer_rows(result))]
    if result["under_load"]:
        lines += ["", "beside a CPU-bound process (TensorFlow on every "
                  "core, aecore with --threads auto):",
                  fixed_width(peer_rows(result, "under_load"))]
    return "\n".join(lines)


def compile_rows(result: dict, steps: dict | None = None
                 ) -> list[list[str]]:
    """`bench --compile`: per design and batch, the compile time, the
    step times eager and compiled, and the steps after which compiling
    pays (`perf.pays_after`, margin included; "never" when compiled
    steps are not faster); `steps` ((arch, batch) -> steps of a run)
    adds the plan's own run length."""
    from .perf import pays_after
    head = ["design", "batch", "compile s", "eager ms/step",
            "compiled ms/step", "pays after (steps)"]
    rows = [head + (["steps of the plan's run"] if steps else [])]
    for r in result["rows"]:
        after = pays_after(r)
        after = "never" if after is None else f"{after:,.0f}"
        if "error" in r:
            cells = [r["arch"], str(r["batch"]), "failed", "", "", after]
        else:
            cells = [r["arch"], str(r["batch"]), f"{r['compile_s']:.1f}",
                     f"{r['eager_s'] * 1e3:.1f}",
                     f"{r['compiled_s'] * 1e3:.1f}", after]
        if steps:
            cells.append(f"{steps[(r['arch'], r['batch'])]:,}")
        rows.append(cells)
    return rows


def compile_report(result: dict) -> str:
    """The terminal report of `bench --compile`."""
    return (f"torch.compile probes, {result['precision']}, "
            f"{result['threads']} thread, fresh compile cache each:\n"
            + fixed_width(compile_rows(result)))
