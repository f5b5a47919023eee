"""snnc.compiler: frontends, passes, pipeline, energy model, reports and the CLI."""
