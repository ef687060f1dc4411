#!/usr/bin/python3
"""Prints an HDF5 file as JSON, read by h5py (an HDF5 reader independent of sinklab's): root attributes,
group and column order, and for each dataset its dtype, shape, chunk shape, compression and values (NaN as
null). Used by tests/metrics to check what a researcher's h5py sees.

Usage: h5_dump.py FILE [--swmr]    (exit 77 when h5py is not installed)
"""
import json
import math
import sys

try:
    import h5py
except ImportError as e:
    print(f"h5py is not installed for {sys.executable}: {e}")
    sys.exit(77)


def main():
    path, swmr = sys.argv[1], "--swmr" in sys.argv[2:]
    out = {"attrs": {}, "groups": [], "columns": {}, "datasets": {}}
    with h5py.File(path, "r", swmr=swmr) as f:
        for name, value in f.attrs.items():
            out["attrs"][name] = value if isinstance(value, str) else float(value)
        for group_name, group in f.items():
            out["groups"].append(group_name)
            out["columns"][group_name] = list(group.keys())
            for column, dataset in group.items():
                values = dataset[()].ravel().tolist()
                out["datasets"][f"/{group_name}/{column}"] = {
                    "dtype": str(dataset.dtype),
                    "shape": list(dataset.shape),
                    "chunks": list(dataset.chunks) if dataset.chunks else None,
                    "compression": dataset.compression,
                    "data": [None if isinstance(v, float) and math.isnan(v) else v for v in values],
                }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
