"""What commands print besides logs: the short classifier table (the report has everything)."""


def format_metrics_table(rows):
    """rows: fit's headline (learner, cv_auc, cv_sd, holdout_auc, ci, balanced_accuracy, warnings).

    A learner with a flagged CV fold is marked ``!`` and each of its warnings is a line below."""
    lines = [f"{'learner':<10}{'CV AUC':>16}{'held-out AUC':>14}{'95% CI':>17}{'bal. acc':>10}"]
    for r in rows:
        low, high = r["ci"]
        mark = "  !" if r.get("warnings") else ""
        lines.append(f"{r['learner']:<10}{r['cv_auc']:>10.3f} ± {r['cv_sd']:.3f}{r['holdout_auc']:>14.3f}"
                     f"{f'[{low:.3f}, {high:.3f}]':>17}{r['balanced_accuracy']:>10.3f}{mark}")
    flagged = [(r["learner"], w) for r in rows for w in r.get("warnings", [])]
    if flagged:
        lines.append("! a cross-validation fold failed (the report's per-fold table shows every fold):")
        lines += [f"  {learner}: {w}" for learner, w in flagged]
    return "\n".join(lines)
