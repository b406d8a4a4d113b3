"""What commands print besides logs: the short classifier table (the report has everything)."""


def format_metrics_table(rows):
    """rows: fit's headline (learner, cv_auc, cv_sd, holdout_auc, ci, balanced_accuracy)."""
    lines = [f"{'learner':<10}{'CV AUC':>16}{'held-out AUC':>14}{'95% CI':>17}{'bal. acc':>10}"]
    for r in rows:
        low, high = r["ci"]
        lines.append(f"{r['learner']:<10}{r['cv_auc']:>10.3f} ± {r['cv_sd']:.3f}{r['holdout_auc']:>14.3f}"
                     f"{f'[{low:.3f}, {high:.3f}]':>17}{r['balanced_accuracy']:>10.3f}")
    return "\n".join(lines)
