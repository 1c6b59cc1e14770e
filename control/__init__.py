"""Control plane: etcd schema and adapter, registry, cluster view, placement, CLI.

Kept import-light on purpose: protocol cores import ``control.logs`` without pulling in etcd.
"""
