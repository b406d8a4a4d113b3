"""Hostile model files for the tests: payloads that create a marker file if they ever run."""

import hashlib
import io
import json
import pathlib
import pickle
import sys
import zipfile


def _without_ids(node):
    if isinstance(node, dict):
        return {k: _without_ids(v) for k, v in node.items() if k != "__id__"}
    if isinstance(node, list):
        return [_without_ids(v) for v in node]
    return node


def popen_node(marker):
    """A skops node that, once built, starts a process creating ``marker``: skops calls a reduce
    node's type with its arguments, here ``subprocess.Popen([python, -c, ...])``."""
    import skops.io as sio

    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    with zipfile.ZipFile(io.BytesIO(sio.dumps((argv,)))) as z:
        args = _without_ids(json.loads(z.read("schema.json")))
    for key in ("protocol", "_skops_version"):
        args.pop(key, None)
    return {"__class__": "Popen", "__module__": "subprocess", "__loader__": "ConstructorFromReduceNode",
            "content": args}


def _first_object_node(node, depth=0):
    """The first object inside the model (below its root) whose state skops rebuilds."""
    if isinstance(node, dict):
        if depth and node.get("__loader__") == "ObjectNode":
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _first_object_node(child, depth + 1)
        if found is not None:
            return found
    return None


def zip_members(path):
    """A skops file's members (schema.json, arrays, JSON forms) by name, to edit."""
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def skops_with_payload(model_file, marker, out=None, nested=True):
    """``model_file`` (a real skops model) with one of its objects, or the whole file, replaced by
    ``popen_node``; written to ``out`` (default: in place)."""
    members = zip_members(model_file)
    schema = json.loads(members["schema.json"])
    if nested:
        target = _first_object_node(schema)
        target.clear()
        target.update(popen_node(marker))
    else:
        schema = {**popen_node(marker), "protocol": schema["protocol"], "_skops_version": schema["_skops_version"]}
    members["schema.json"] = json.dumps(schema).encode()
    return write_zip(out or model_file, members)


class TouchOnLoad:
    """Pickled, it becomes ``Path(marker).touch()`` when loaded: the three-line pickle attack."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def pickle_with_payload(path, marker):
    pathlib.Path(path).write_bytes(pickle.dumps(TouchOnLoad(marker)))
    return path


def restamp(folder, rel, old_rel=None):
    """Make the stage record in ``folder`` list ``rel`` with its current sha256 and size (and drop
    ``old_rel``), so that only the model file's own checks stand between it and a reader."""
    record_path = pathlib.Path(folder) / "stage.json"
    record = json.loads(record_path.read_text())
    if old_rel:
        record["outputs"].pop(old_rel)
    data = (pathlib.Path(folder) / rel).read_bytes()
    record["outputs"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True))
