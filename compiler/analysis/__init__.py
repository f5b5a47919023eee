"""What a compiled network costs and how well it keeps the float model's behaviour: bit budget,
energy/latency, sweeps over bit widths, and `evaluate` (compile + simulate + map + price)."""
