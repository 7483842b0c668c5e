"""One ComponentResource per concern; each validates its args before making children."""
