"""What a compiled network costs and how well it keeps the float model's behaviour: bit budget,
energy/latency, sweeps over bit widths, `evaluate` (compile + simulate + map + price), and
`dataset_eval` (the same over a whole dataset, in batches, on the engines of `distributed`)."""
