"""Cost rules over the whole stack, on the cost engine's projection."""
