"""Frontends: turn models from other tools into NIR (or chip-level) graphs."""
