"""Design-matrix assembly: cached embedding blocks + the clinical table -> one row per case.

Pure join and alignment (nothing is fitted): a case lacking a modality keeps NaN in that
modality's blocks and 1 in its missing-modality indicator, for the models to impute per fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def block_name(modality, backbone):
    return f"{modality}/{backbone}"


def indicator_name(modality):
    return f"missing:{modality}"


def block_columns(block, width, feature_names=None):
    """Column names of a block: its feature names where known (handcrafted), else numbered."""
    if feature_names is not None and len(feature_names) == width:
        return [f"{block}/{n}" for n in feature_names]
    return [f"{block}/{j:04d}" for j in range(width)]


def assemble_design(case_ids, clinical_frame, tables, clinical_types):
    """Align ``tables`` ({(modality, backbone): table}) and clinical columns on ``case_ids``.

    Returns the design frame (index = case ids) and a layout dict (blocks, clinical, indicators,
    block_indicators) describing which columns are which.
    """
    case_ids = list(case_ids)
    index = pd.Index(case_ids, name="case_id")
    parts, blocks, block_indicators, indicators = [], {}, {}, {}
    for (modality, backbone), table in tables.items():
        name = block_name(modality, backbone)
        columns = block_columns(name, table.embeddings.shape[1], table.feature_names)
        rows = pd.DataFrame(table.embeddings.astype(np.float64), index=pd.Index(table.case_ids),
                            columns=columns)
        parts.append(rows.reindex(index))
        blocks[name] = columns
        present = index.isin(table.case_ids)
        block_indicators[name] = indicator_name(modality)
        indicators[indicator_name(modality)] = np.where(present, 0.0, 1.0)
    clinical = clinical_frame.set_index(clinical_frame["case_id"]).reindex(index)[list(clinical_types)]
    for column, kind in clinical_types.items():
        if kind != "categorical":
            clinical[column] = pd.to_numeric(clinical[column], errors="coerce").astype(float)
        else:
            clinical[column] = clinical[column].astype(object).where(clinical[column] != "", np.nan)
    frame = pd.concat(parts + [clinical, pd.DataFrame(indicators, index=index)], axis=1)
    layout = {"blocks": blocks, "clinical": dict(clinical_types), "indicators": list(indicators),
              "block_indicators": block_indicators}
    return frame, layout


def pool_views(table, pool, views):
    """A modality's table with several views per case as the blocks the design gets.

    ``mean``/``max``: one row per case over the views it has (``{"": table}``); ``concat``: one table
    per view (``{view: table}``), so a missing view is a missing block with its own indicator.
    """
    from features.store import EmbeddingTable  # noqa: PLC0415

    row_views = table.views or [None] * len(table.case_ids)
    if pool == "concat":
        out = {}
        for view in views:
            rows = [i for i, v in enumerate(row_views) if v == view]
            out[view] = EmbeddingTable([table.case_ids[i] for i in rows], [table.keys[i] for i in rows],
                                       table.embeddings[rows], table.attrs, table.feature_names)
        return out
    order = list(dict.fromkeys(table.case_ids))
    at = {c: [] for c in order}
    for i, c in enumerate(table.case_ids):
        at[c].append(i)
    reduce = np.mean if pool == "mean" else np.max
    width = table.embeddings.shape[1]
    emb = (np.stack([reduce(table.embeddings[at[c]], axis=0) for c in order]) if order
           else np.zeros((0, width), np.float32))
    keys = ["+".join(table.keys[i] for i in at[c]) for c in order]
    return {"": EmbeddingTable(order, keys, emb, table.attrs, table.feature_names)}
