"""HTTP routes: one module per resource; endpoints only raise ``serving.errors``."""
