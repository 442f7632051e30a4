"""How evaluation results are shown: the Markdown table in the layout of the paper's Table 1, the
published-scaling block, and the line naming the files left out of the averages."""

from __future__ import annotations

from timar_ros.eval.metrics import GROUP_NAMES as GROUPS
from timar_ros.eval.metrics import format_for_pub

# The published table: metric -> (raw keys EXP/JAW/POSE); SID is TIMAR's ``sid`` (k-means fitted
# on GT, histogram of the prediction); the ``reverse_sid`` DualTalk's own script computes is
# given in its own column.
TABLE_COLUMNS = [
    ("FD", "fid"),
    ("P-FD", "p_fid"),
    ("MSE", "mse"),
    ("SID", "sid"),
    ("rPCC", "rpcc"),
    ("rev. SID", "reverse_sid"),
]


def pub_lines(pub: dict) -> list[str]:
    """The published-scaling block: a heading, the reference's key names, the values."""
    return [
        "=== published scaling (FD/P-FD x1/x1e3/x1e2, MSE x10/x1e3/x1e2, rPCC x1e2/x10/x10) ===",
        "\t".join(pub.keys()),
        "\t".join(str(v) for v in pub.values()),
    ]


def exclusion_note(report: dict) -> str:
    """One line saying which files the averages of an :func:`evaluate_dirs` report leave out
    (every table prints it), or "" when none is left out."""
    parts = []
    skipped = report.get("skipped") or {}
    if skipped:
        shown = ", ".join(f"{n} ({why})" for n, why in sorted(skipped.items())[:3])
        parts.append(
            f"{len(skipped)} of {report.get('predictions', len(skipped))} predictions "
            f"skipped: {shown}{' ...' if len(skipped) > 3 else ''}"
        )
    for key, names in sorted((report.get("excluded") or {}).items()):
        parts.append(
            f"{key} left out for {len(names)} file(s) where it is undefined "
            f"({', '.join(names[:3])}{' ...' if len(names) > 3 else ''})"
        )
    return "; ".join(parts)


def table_row(avg: dict) -> list[str]:
    """Cells ``EXP/JAW/POSE`` (published scaling) of the columns in :data:`TABLE_COLUMNS`."""
    pub = format_for_pub(avg)
    return ["/".join(f"{pub[f'{key}_{g}']:.2f}" for g in GROUPS) for _, key in TABLE_COLUMNS]


def markdown_table(rows: list[tuple], title: str = "") -> str:
    """Rows ``(label, raw metric averages[, metrics report])`` -> a Markdown table in Table 1's
    layout. With the :func:`timar_ros.eval.metrics.evaluate_dirs` report of a row, a ``files``
    column gives the files averaged of those predicted, and a note under the table names every file
    left out of an average."""
    counted = any(len(r) > 2 for r in rows)
    head = (
        "| "
        + " | ".join(["setting"] + [c for c, _ in TABLE_COLUMNS] + (["files"] if counted else []))
        + " |"
    )
    sep = "|" + "---|" * (len(TABLE_COLUMNS) + 1 + counted)
    lines = ([f"**{title}**", ""] if title else []) + [head, sep]
    notes = []
    for label, avg, *rep in rows:
        files = []
        if counted:
            r = rep[0] if rep else {}
            files = [
                f"{r.get('files', '?')}/{r.get('predictions', '?')}"
                + (f" ({r['excluded_files']} excluded)" if r.get("excluded_files") else "")
            ]
            if exclusion_note(r):
                notes.append(f"{label}: {exclusion_note(r)}.")
        lines.append("| " + " | ".join([label] + table_row(avg) + files) + " |")
    if notes:
        lines += ["", "Left out of the averages: " + " ".join(notes)]
    lines += [
        "",
        "Cells: EXP/JAW/POSE. Scaling as published: FD and P-FD x1/x1e3/x1e2, "
        "MSE x10/x1e3/x1e2, rPCC x1e2/x10/x10, SID raw. Lower is better except SID "
        "(higher). SID = k-means fitted on GT, histogram of the prediction; rev. SID = "
        "the reverse (what DualTalk's own script computes).",
    ]
    return "\n".join(lines) + "\n"
