"""Rich rendering for ``nncli data`` and ``nncli export`` (the CLI layer: nothing below imports it)."""

from __future__ import annotations

SHOWN_FEATURES = 8  # feature rows printed before "... N more" (the first ones and the last)
SHOWN_CLASSES = 20  # class rows printed before "... N more"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def _g(x: float) -> str:
    return f"{x:.4g}"


def render_data(report: dict) -> None:
    """What ``nncli data`` prints: the source, a table of parts, classes, feature ranges, time and memory."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"{escape(report['config'])}: data {escape(report['source'])}")
    mm = report.get("memory_mapped")
    if mm:
        console.print(f"memory-mapped: {escape(mm['file'])} ({_mb(mm['bytes'])} of {mm['dtype']}), read in batches; "
                      f"pages released every {_mb(mm['release_budget'])}")
    classes = report["num_classes"]
    parts = report["parts"]
    table = Table("part", "samples", "x shape", "x dtype", "y shape", "y dtype", *([] if classes else ["y range"]),
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for name, p in parts.items():
        last = [] if classes else [f"{_g(p['min'])} .. {_g(p['max'])} (mean {_g(p['mean'])})"]
        table.add_row(name, f"{p['samples']:,}", str(tuple(p["x_shape"])), p["x_dtype"], str(tuple(p["y_shape"])),
                      p["y_dtype"], *last)
    console.print(table)
    for name, source in (report.get("sources") or {}).items():
        if source.startswith(f"{name} file "):
            console.print(f"{name}: {escape(source)}")
    if classes:
        ct = Table("class", *parts, box=box.SIMPLE_HEAD, pad_edge=False, title=f"{classes} classes",
                   title_justify="left")
        names = report.get("class_names") or []
        for c in range(min(classes, SHOWN_CLASSES)):
            label = f"{c} {escape(names[c])}" if c < len(names) else str(c)
            ct.add_row(label, *(f"{p['classes'][c]:,}" for p in parts.values()))
        if classes > SHOWN_CLASSES:
            ct.add_row(f"... {classes - SHOWN_CLASSES} more", *("" for _ in parts))
        console.print(ct)
    f = report["features"]
    console.print(f"features: {f['count']:,} per sample (input shape {tuple(report['input_shape'])}), "
                  f"range {_g(f['min'])} .. {_g(f['max'])} as loaded;\nnormalize: {report['normalize']} -> "
                  f"{_g(f['normalized_min'])} .. {_g(f['normalized_max'])}"
                  + (f"; {len(f['constant'])} constant: {', '.join(f['constant'][:5])}"
                     + (", ..." if len(f["constant"]) > 5 else "") if f["constant"] else ""))
    columns = f["columns"]
    shown = columns if len(columns) <= SHOWN_FEATURES else columns[:SHOWN_FEATURES - 2] + columns[-2:]
    ft = Table("feature", "min", "max", "mean", "std", "normalized", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, c in enumerate(shown):
        if len(columns) > SHOWN_FEATURES and i == SHOWN_FEATURES - 2:
            ft.add_row(f"... {len(columns) - SHOWN_FEATURES} more", "", "", "", "", "")
        ft.add_row(escape(c["name"]), _g(c["min"]), _g(c["max"]), _g(c["mean"]), _g(c["std"]),
                   f"{_g(c['normalized_min'])} .. {_g(c['normalized_max'])}")
    console.print(ft)
    approx = "" if report["peak_memory_exact"] else " (at most; the peak could not be reset)"
    console.print(f"loaded in {report['load_seconds']:.2f} s; peak memory {_mb(report['peak_memory_bytes'])} above "
                  f"the interpreter's{approx};\narrays held for training {_mb(report['held_bytes'])}")
    for warning in report.get("warnings") or []:
        console.print(f"warning: {escape(warning)}")


def render_export(result) -> None:
    """What ``nncli export`` prints: the file, what it holds, and its inputs and outputs."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    epoch = f" (epoch {result.epoch})" if result.epoch is not None else ""
    console.print(f"wrote [bold]{escape(str(result.path))}[/]")
    console.print(f"{result.checkpoint} checkpoint{epoch}, {result.layers} layers, {result.weights:,} weights")
    if result.format == "onnx":
        console.print(f"ONNX opset {result.details['opset']}; normalization ({result.normalize}) inside: "
                      "raw features in, as for predict")
        for kind, values in (("input", result.inputs), ("output", result.outputs)):
            for name, dims, dtype in values:
                console.print(f"  {kind:6s} {name:13s} {dtype} {dims}")
        return
    console.print("torch.nn.Sequential names and layouts")
    console.print(f"metadata: the torch modules, the input normalization ({result.normalize})")
    for name, dims, dtype in result.inputs:
        console.print(f"  {name:22s} {dtype} {dims}")
