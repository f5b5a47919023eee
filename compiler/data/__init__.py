"""Inputs from outside: user arrays (.npy/.npz) and event-camera recordings, turned into the
[batch, T, *shape] arrays every backend takes."""
