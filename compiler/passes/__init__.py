"""Compiler passes: small named graph-to-graph transformations run by the PassManager."""
