"""Rules about the pack itself: its waivers."""
