"""Lava processes snnc adds: host-streaming recorders (see tap.py)."""
