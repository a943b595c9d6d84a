"""SQL of the dispatcher console, one module per resource."""
