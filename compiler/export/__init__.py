"""Compiled chip graphs written in other tools' formats (`netx`: lava-dl `.net` files)."""
