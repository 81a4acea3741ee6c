"""What every stage shares and no result depends on, but for names and the backend: one-line errors,
atomic outputs, params.yaml and its checks, the named choices, what things are called, Keras."""
