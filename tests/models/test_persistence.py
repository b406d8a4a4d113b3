"""Model files are data: every learner round-trips exactly through a skops file, and a file naming
any type outside the trusted list (or damaged) is refused before anything in it runs."""
import io
import json
import zipfile

import numpy as np
import pytest
import skops.io as sio

from models_synthetic import FAST_PARAMS
from models.build import FitSettings, build_estimator
from models.learners import LEARNERS, make_pipeline, make_stack
from models.persistence import ModelFileError, load_model, own_types, save_model, trusted_types
from tampering import pickle_with_payload, skops_with_payload, write_zip, zip_members

SETTINGS = FitSettings(params=FAST_PARAMS, pca_components=5, stack_base=["knn", "xgb", "rf"], meta="xgb",
                       tune={"rf": {"max_depth": [2, 4]}}, tune_iter=2)


def _fitted(name, design):
    X, y, g, layout = design
    if name == "tuned":
        return build_estimator("rf", layout, SETTINGS, 0).fit(X, y, groups=g)
    if name == "stack":
        stack = make_stack(SETTINGS.stack_base, layout, meta="xgb", params=FAST_PARAMS, pca_components=5,
                           random_state=0, n_splits=2)
        return stack.fit(X, y, groups=g)
    return make_pipeline(name, layout, FAST_PARAMS[name], pca_components=5, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def saved(design, tmp_path_factory):
    """Every learner, the stack (xgb base and meta) and a tuned learner: fitted, saved, loaded."""
    folder = tmp_path_factory.mktemp("saved")
    out = {}
    for name in sorted(LEARNERS) + ["stack", "tuned"]:
        model = _fitted(name, design)
        path = folder / f"{name}.skops"
        save_model(model, path)
        out[name] = (model, path, load_model(path))
    return out


@pytest.mark.parametrize("name", sorted(LEARNERS) + ["stack", "tuned"])
def test_a_saved_and_loaded_model_predicts_bit_identically(name, saved, design):
    model, _, loaded = saved[name]
    X = design[0]
    assert type(loaded) is type(model)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("balancing", ["smote", "borderline-smote", "adasyn", "class-weight", "none"])
def test_every_balancing_and_a_tree_based_neighbour_search_load(balancing, design, tmp_path):
    X, y, _, layout = design
    small = layout.subset(["mammo/cnn"], clinical=False)        # 2 components: knn and SMOTE use a KD-tree
    model = make_pipeline("knn", small, {}, balancing=balancing, pca_components=2, random_state=0).fit(X, y)
    save_model(model, tmp_path / "knn.skops")
    assert np.array_equal(load_model(tmp_path / "knn.skops").predict_proba(X), model.predict_proba(X))


def test_a_loaded_xgboost_model_gives_identical_shap_values_and_margins(saved, design):
    from reports.trees import tree_shap

    model, _, loaded = saved["xgb"]
    X, y = design[0], design[1]
    before, after = tree_shap(model, X, np.unique(y)), tree_shap(loaded, X, np.unique(y))
    assert np.array_equal(before["values"], after["values"]) and np.array_equal(before["base"], after["base"])
    booster, again = model[-1].estimator_.get_booster(), loaded[-1].estimator_.get_booster()
    assert json.loads(again.save_config()) == json.loads(booster.save_config())


def test_xgboost_boosters_are_stored_as_xgboost_json_not_as_its_binary_snapshot(saved):
    with zipfile.ZipFile(saved["stack"][1]) as z:
        models = [json.loads(z.read(n)) for n in z.namelist() if n.endswith(".model.json")]
        schema = z.read("schema.json").decode()
    assert len(models) == 2 and all("learner" in m for m in models)     # the xgb base and the meta-learner
    assert "BytearrayNode" not in schema and "BytesNode" not in schema


def test_the_layout_is_stored_as_its_json_dict_and_checked_when_rebuilt(saved, tmp_path):
    _, path, loaded = saved["lr"]
    members = zip_members(path)
    assert '\\"m17\\"' not in members["schema.json"].decode()          # no node per column name
    assert loaded.named_steps["fuse"].layout_.columns == saved["lr"][0].named_steps["fuse"].layout_.columns
    for name in [n for n in members if n.endswith(".layout.json")]:
        members[name] = members[name].replace(b'"numeric"', b'"text"')
    with pytest.raises(ModelFileError, match="clinical column types must be one of"):
        load_model(write_zip(tmp_path / "lr.skops", members))


def test_the_trusted_list_names_breastfuse_estimators_and_model_libraries_only():
    own = set(own_types())
    assert {"models.fusion.FusionTransformer", "models.fusion.CategoricalOneHot", "models.layout.FeatureLayout",
            "models.balancing.FoldSafeOversampler", "models.learners.EncodedClassifier",
            "models.learners.CappedKNeighbors", "models.stacking.StackedPipelines",
            "models.tuning.TunedEstimator"} <= own
    assert not own & {"models.learners.Learner", "models.build.FitSettings", "models.evaluate.CVResult"}
    allowed = ("models.", "sklearn.", "imblearn.", "xgboost.", "numpy.", "scipy.sparse.")
    assert [t for t in trusted_types() if not t.startswith(allowed)] == []
    assert "xgboost.core.XGBoostError" not in trusted_types()


def test_the_payload_used_below_really_runs_when_its_type_is_trusted(saved, tmp_path):
    marker = tmp_path / "ran"
    hostile = skops_with_payload(saved["lr"][1], marker, tmp_path / "hostile.skops", nested=False)
    sio.load(hostile, trusted=["subprocess.Popen"]).wait()
    assert marker.exists()


@pytest.mark.parametrize("nested", [True, False])
def test_a_model_file_naming_an_untrusted_type_is_refused_and_its_payload_never_runs(nested, saved, tmp_path):
    marker = tmp_path / "ran"
    hostile = skops_with_payload(saved["lr"][1], marker, tmp_path / "lr.skops", nested=nested)
    with pytest.raises(ModelFileError, match=r"holds types BreastFuse does not load: subprocess\.Popen") as err:
        load_model(hostile)
    assert err.value.untrusted == ["subprocess.Popen"] and str(hostile) in str(err.value)
    assert not marker.exists()


def test_a_pickle_in_place_of_a_model_file_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(pickle_with_payload(tmp_path / "lr.skops", marker))
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_model_file_is_a_model_file_error_naming_it(keep, saved, tmp_path):
    data = saved["rf"][1].read_bytes()
    path = tmp_path / "rf.skops"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="corrupt or truncated") as err:
        load_model(path)
    assert err.value.path == path


def test_a_decision_tree_whose_indices_point_outside_it_is_refused(saved, tmp_path):
    members = zip_members(saved["rf"][1])
    schema = json.loads(members["schema.json"])

    def nodes_file(node):
        if isinstance(node, dict):
            if node.get("__loader__") == "TreeNode":
                return node["content"]["content"]["nodes"]["file"]
            node = list(node.values())
        for child in node if isinstance(node, list) else []:
            if (found := nodes_file(child)) is not None:
                return found
        return None

    name = nodes_file(schema)
    nodes = np.load(io.BytesIO(members[name]), allow_pickle=False)
    nodes["left_child"][0] = 10 ** 6
    buffer = io.BytesIO()
    np.save(buffer, nodes, allow_pickle=False)
    members[name] = buffer.getvalue()
    with pytest.raises(ModelFileError, match="decision tree in it has child or feature indices outside"):
        load_model(write_zip(tmp_path / "rf.skops", members))
